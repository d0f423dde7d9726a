"""``python -m kgzoo.cli ARGS``: the same as the ``kgzoo`` console script."""
import sys

from . import main

sys.exit(main())
