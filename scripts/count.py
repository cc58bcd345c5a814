#!/usr/bin/env python
"""`darts_hub.commands.count` run from a clone: `python scripts/count.py --help` says what it does."""

from darts_hub.commands.count import main


if __name__ == "__main__":
    main()
