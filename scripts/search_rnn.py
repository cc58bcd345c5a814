#!/usr/bin/env python
"""`darts_hub.commands.search_rnn` run from a clone: `python scripts/search_rnn.py --help` says what it does."""

from darts_hub.commands.search_rnn import main


if __name__ == "__main__":
    main()
