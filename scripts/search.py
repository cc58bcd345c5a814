#!/usr/bin/env python
"""`darts_hub.commands.search` run from a clone: `python scripts/search.py --help` says what it does."""

from darts_hub.commands.search import main


if __name__ == "__main__":
    main()
