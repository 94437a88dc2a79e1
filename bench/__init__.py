"""`make bench`: cold init, per-request cost, scale, artifact and memory, side by side.

Run as `python -m bench`; see bench/__main__.py for the knobs and docs/benchmarks.md for results.
"""
