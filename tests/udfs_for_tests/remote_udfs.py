"""A UDF taking a key as an argument, for the test that a literal key is refused when stored."""

from __future__ import annotations

import lakehouse as lh


@lh.udf
def call_service(text: str, api_key: str = "", extra: str = "") -> str:
    """What a UDF calling a web service with a key looks like."""
    return f"{text}:{len(api_key)}:{len(extra)}"
