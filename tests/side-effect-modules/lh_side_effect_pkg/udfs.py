"""UDFs in a subpackage, spelled the ways lakehouse's decorators can be imported; importing this
module appends its name to ``$LH_TEST_MARKER``."""

from __future__ import annotations

import os

import lakehouse
from lakehouse import query as lh_query
from lakehouse import udf as make_udf

_MARKER = os.environ.get("LH_TEST_MARKER")
if _MARKER:
    with open(_MARKER, "a") as marker:
        marker.write(__name__ + "\n")


@lakehouse.udf
def triple(n: int) -> int:
    return n * 3


@make_udf(batch_size=8)
def lengths(xs: list[str]) -> list[int]:
    return [len(x) for x in xs]


class Words:
    @staticmethod
    @make_udf
    def shout(s: str) -> str:
        return s.upper() + "!"


@lh_query
def same_table(n: int):
    """An @lh.query (imported under another name); never run by the tests."""
    return lakehouse.connect().get_table("t").where(lakehouse.lit(n) > 0)


def plain(n: int) -> int:
    """Not decorated: never importable through a stored definition."""
    return n
