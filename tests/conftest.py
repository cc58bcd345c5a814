"""Tests never touch the network: the Hub is unreachable on our machines and must fail fast, not retry."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
