"""A module whose import leaves a trace: it appends its name to ``$LH_TEST_MARKER``.

A stored definition must never make lakehouse import it unless it is verifiably the module the
definition was made from (``triple``, with its fingerprint) or the user trusts it.
"""

from __future__ import annotations

import os

import lakehouse as lh

_MARKER = os.environ.get("LH_TEST_MARKER")
if _MARKER:
    with open(_MARKER, "a") as marker:
        marker.write(__name__ + "\n")


def double(n: int) -> int:
    """Not a UDF: a tampered definition may name it, with its exact fingerprint."""
    return n * 2


@lh.udf
def triple(n: int) -> int:
    return n * 3
