"""The row UDF the ingest benchmark computes, in an importable module.

A UDF defined in ``__main__`` works in the defining process but is flagged as not computable
elsewhere; keeping it here gives it a real reference (``bench_udfs:shout``). The raw Lance
baseline calls ``shout.fn``, the very same Python function the lakehouse executor calls.
"""

from __future__ import annotations

import lakehouse as lh


@lh.udf
def shout(s: str) -> str:
    return s.upper()
