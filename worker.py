"""`python worker.py [--log-level L] [--log-json]`: the Temporal worker (`automations worker`)."""

import sys

from temporal_automations.cli import app

if __name__ == "__main__":
    app(["worker", *sys.argv[1:]])
