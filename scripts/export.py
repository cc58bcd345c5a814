#!/usr/bin/env python
"""`darts_hub.commands.export` run from a clone: `python scripts/export.py --help` says what it does."""

from darts_hub.commands.export import main


if __name__ == "__main__":
    main()
