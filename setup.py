"""The package list, which pyproject.toml cannot express: kgzoo's packages plus ``kgzoo.zoo_configs``,
mapped (``[tool.setuptools.package-dir]`` in pyproject.toml) to the repository's top-level
``zoo_configs/`` so that the zoo configs ship inside the wheel as package data. Everything else
is in pyproject.toml. ``kgzoo.published`` is ``benchmarks/results/*.jsonl`` (the published rows), the same way."""
from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["kgzoo*"]), "kgzoo.zoo_configs", "kgzoo.published",
                *(f"kgzoo.zoo_configs.{p}" for p in find_namespace_packages(where="zoo_configs"))])
