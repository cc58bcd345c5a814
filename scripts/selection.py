#!/usr/bin/env python
"""`darts_hub.commands.selection` run from a clone: `python scripts/selection.py --help` says what it does."""

from darts_hub.commands.selection import main


if __name__ == "__main__":
    main()
