"""``python -m cnnfast`` and the ``cnnfast`` console script: see :mod:`cnnfast.cli`."""
from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
