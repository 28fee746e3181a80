"""`python worker.py`: the Temporal worker (the same as `automations worker`)."""

from temporal_automations.worker import main

if __name__ == "__main__":
    main()
