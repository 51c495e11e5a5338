"""The `rag` command's first lines. Importing the command line takes a moment; a Ctrl-C in it
would print Python's traceback, so it says the same one line as a Ctrl-C later does."""
from __future__ import annotations

import sys

from rag.errors import INTERRUPTED


def main() -> None:
    try:
        from rag.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(INTERRUPTED) from None
    run()
