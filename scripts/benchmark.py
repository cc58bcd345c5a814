#!/usr/bin/env python
"""`darts_hub.commands.benchmark` run from a clone: `python scripts/benchmark.py --help` says what it does."""

from darts_hub.commands.benchmark import main


if __name__ == "__main__":
    main()
