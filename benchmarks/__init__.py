"""Benchmarks: `python -m benchmarks` prints every figure next to its in-run baseline and target.

One module per figure; each has a `measure_*` function that a smoke test runs at a tiny size and
a `figures(quick)` function that `__main__` runs at full (or `--quick`) size. Nothing here asserts
a time: numbers are printed and judged against their targets in the final table. All traffic
stays on 127.0.0.1.
"""
