"""`python worker.py`: the Temporal worker (the same as `automations worker`)."""

from temporal_automations.cli import worker

if __name__ == "__main__":
    worker()
