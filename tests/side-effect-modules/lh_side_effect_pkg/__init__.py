"""A package whose import leaves a trace (its name, appended to ``$LH_TEST_MARKER``): locating
``lh_side_effect_pkg.udfs`` to verify it must not run this file."""

from __future__ import annotations

import os

_MARKER = os.environ.get("LH_TEST_MARKER")
if _MARKER:
    with open(_MARKER, "a") as marker:
        marker.write(__name__ + "\n")
