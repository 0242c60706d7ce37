"""`python -m bench.s3proc INFO_PATH BUCKETS`: the tests' moto S3 server in its own process.

tests/fakes/s3.py's `MotoS3.start()` runs moto's server in a thread of the calling process.
The scale-out benchmark starts it here instead, as a separate process: its threads then do
not share the benchmark process's GIL with the fake Telegram, the fake provider and the load
generator, and its CPU time is its own (read from /proc like the bot's).

Creates BUCKETS buckets with `create_bucket()`, writes ``{"url": ..., "buckets": [...]}`` to
INFO_PATH, and serves until its standard input closes (the benchmark exits) or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from tests.fakes.s3 import MotoS3


def main() -> int:
    info_path, count = Path(sys.argv[1]), int(sys.argv[2])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = MotoS3.start()
    try:
        buckets = [asyncio.run(server.create_bucket()) for _ in range(count)]
        partial = info_path.with_suffix(".tmp")
        partial.write_text(json.dumps({"url": server.url, "buckets": buckets}))
        partial.replace(info_path)
        sys.stdin.read()  # until the benchmark closes the pipe (or dies)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
