"""Command-line helpers that import nothing heavy: the command line uses them before it knows
which command runs (``--import`` and ``--config-dir`` inside ``kgzoo fit``/``test``'s arguments)."""
from __future__ import annotations


def take_option(option: str, args: list[str]) -> tuple[list[str], list[str]]:
    """Split ``OPTION X`` / ``OPTION=X`` (e.g. ``--import``) out of a LightningCLI command line.

    Returns:
        ``(the X in order, the remaining arguments)``.

    Raises:
        ValueError: ``OPTION`` without a value.
    """
    values: list[str] = []
    rest: list[str] = []
    it = iter(args)
    for a in it:
        if a == option:
            value = next(it, None)
            if value is None:
                raise ValueError(f"{option} needs a value")
            values.append(value)
        elif a.startswith(f"{option}="):
            values.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return values, rest
