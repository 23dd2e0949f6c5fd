"""The PyTorch loader benchmark (benchmarks/loader.py) runs end to end on a quick input and
writes its JSON with every side measured; the figures themselves are not asserted (a loaded
machine makes them noise). Its ``measure`` is importable, as benchmarks/maintenance.py does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from benchmark_runs import run_benchmark

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SIDES = ("lakehouse_map", "lakehouse_iterable", "plain_loop", "files_loader")


@pytest.mark.slow  # four epochs with worker processes: about 10 s
def test_loader_benchmark_quick_measures_every_side(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "loader", "--quick", "--images", "64")
    report = run.report
    assert report["benchmark"] == "loader" and report["quick"] is True
    result = report["operations"]["pytorch_loader"]
    assert (result["unit"], result["images"], result["workers"]) == ("images/s", 64, 2)
    assert all(result[side] > 0 for side in SIDES)
    assert abs(result["ratio"] - result["lakehouse_map"] / result["plain_loop"]) < 0.01
    for label in ("lakehouse map", "lakehouse iterable", "(plain loop", "(files loader"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


def test_measure_is_importable() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from loader import measure
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert callable(measure) and "images/s" in (measure.__doc__ or "")
