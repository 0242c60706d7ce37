"""Benchmarks of the whole service against the local fakes (`python -m bench.run`).

`ROOT` is the checkout the bot processes run from; `RESULTS` is where runs write their
JSON, the children's logs and profiles (git-ignored).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
