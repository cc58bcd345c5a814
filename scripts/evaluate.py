#!/usr/bin/env python
"""`darts_hub.commands.evaluate` run from a clone: `python scripts/evaluate.py --help` says what it does."""

from darts_hub.commands.evaluate import main


if __name__ == "__main__":
    main()
