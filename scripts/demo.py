#!/usr/bin/env python
"""`darts_hub.commands.demo` run from a clone: `python scripts/demo.py --help` says what it does."""

from darts_hub.commands.demo import main


if __name__ == "__main__":
    main()
