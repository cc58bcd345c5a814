#!/usr/bin/env python
"""`darts_hub.commands.convert_original_checkpoint` run from a clone: `python scripts/convert_original_checkpoint.py --help` says what it does."""

from darts_hub.commands.convert_original_checkpoint import main


if __name__ == "__main__":
    main()
