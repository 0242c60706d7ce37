"""Benchmark of the whole service against the local fakes (`python -m bench.run`)."""
