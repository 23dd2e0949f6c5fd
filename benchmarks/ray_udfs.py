"""The CPU-heavy row UDF of benchmarks/ray.py, in a module of its own that the benchmark ships
to the Ray workers (runtime_env py_modules): the benchmarks folder itself must not be on the
workers' path, where its ray.py would hide the ray package."""

from __future__ import annotations

import lakehouse as lh

#: loop iterations per row: about 20 µs of pure Python per row on a 2020s CPU
WORK = 200


@lh.udf
def churn(n: int) -> int:
    """A deterministic, CPU-bound function of n (an integer hash, WORK rounds)."""
    x = n
    for _ in range(WORK):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x
