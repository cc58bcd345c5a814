#!/usr/bin/env python
"""`darts_hub.commands.train` run from a clone: `python scripts/train.py --help` says what it does."""

from darts_hub.commands.train import main


if __name__ == "__main__":
    main()
