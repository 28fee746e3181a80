"""The events writer's CPU per event, standalone, printed as JSON (never asserted).

    python bench/writer_cpu.py [--events 300000] [--stored 1000000] [--rate 40000] [--module M]

Starts the writer process (api/events_writer.py) on a fresh SQLite file as the API does,
optionally fills the table with `--stored` events first (through the writer, unpaced), then
feeds it `--events` events in request bodies shaped like bench/ingest.py's (500 events, 1%
matching names, a fresh id and resource id each, one `occurred`), at `--rate` events/s (the
ingest load's pace: the writer commits what has arrived together, so an unpaced feed would
give it larger transactions than it gets in the stack), and reads the writer's user and system
CPU time from /proc over that window. CPU time per event does not depend on what else runs on
the machine (throughput does); the load average is printed beside it anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import TICKS, bodies, load_average  # type: ignore[import-not-found]  # noqa: E402

from temporal_automations.api.events_writer import FRAME  # noqa: E402


def cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def feed(writer: subprocess.Popen[bytes], requests: list[bytes], rate: float | None) -> None:
    """Send every body as a frame (paced to `rate` events/s), then await every answer."""
    assert writer.stdin is not None and writer.stdout is not None
    started = time.monotonic()
    sent = 0
    for body in requests:
        if rate:
            due = started + sent / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
        writer.stdin.write(FRAME.pack(len(body), int(time.time() * 1e6)) + body)
        writer.stdin.flush()
        sent += body.count(b'"id"')
    for _ in requests:
        answer = writer.stdout.readline()
        if not answer.startswith(b"ok"):
            raise RuntimeError(f"writer answered {answer!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--stored", type=int, default=0)
    parser.add_argument("--rate", type=float, default=40_000, help="0: unpaced")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument(
        "--module",
        default="temporal_automations.api.events_writer",
        help="the writer module to run (an older copy on PYTHONPATH, for an A/B)",
    )
    args = parser.parse_args()

    def one_percent(j: int) -> int | None:
        return 0 if j % 100 == 0 else None

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/events.db"
        writer = subprocess.Popen(
            [sys.executable, "-P", "-m", args.module, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=(lambda: os.nice(args.nice)) if args.nice else None,
        )
        try:
            warm, _ = bodies(1_000, one_percent)
            feed(writer, warm, None)  # imports, table creation
            for start in range(0, args.stored, 100_000):
                filler, _ = bodies(min(100_000, args.stored - start), one_percent)
                feed(writer, filler, None)
            requests, _ = bodies(args.events, one_percent)
            load_before = load_average()
            user0, system0 = cpu(writer.pid)
            started = time.monotonic()
            feed(writer, requests, args.rate or None)
            elapsed = time.monotonic() - started
            user1, system1 = cpu(writer.pid)
            size = sum(f.stat().st_size for f in Path(folder).iterdir())
        finally:
            assert writer.stdin is not None
            writer.stdin.close()
            writer.wait(timeout=60)
    per_event = 1e6 / args.events
    print(
        json.dumps(
            {
                "events": args.events,
                "stored_before": args.stored,
                "rate": args.rate,
                "seconds": round(elapsed, 2),
                "writer_cpu_us_per_event": round(
                    (user1 - user0 + system1 - system0) * per_event, 2
                ),
                "user_us": round((user1 - user0) * per_event, 2),
                "system_us": round((system1 - system0) * per_event, 2),
                "files_mb": round(size / 2**20, 1),
                "load_average": [load_before, load_average()],
            }
        )
    )


if __name__ == "__main__":
    main()
