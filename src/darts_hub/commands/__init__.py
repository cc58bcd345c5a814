"""The command-line programs: each parses its arguments and calls one library function. Installed as `darts-search`,
`darts-search-rnn`, `darts-train`, `darts-evaluate`, `darts-convert`, `darts-visualize`, `darts-count` and
`darts-benchmark`; runnable as `accelerate launch -m darts_hub.commands.search ...`, or from a clone as
`scripts/search.py ...`."""
