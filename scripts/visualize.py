#!/usr/bin/env python
"""`darts_hub.commands.visualize` run from a clone: `python scripts/visualize.py --help` says what it does."""

from darts_hub.commands.visualize import main


if __name__ == "__main__":
    main()
