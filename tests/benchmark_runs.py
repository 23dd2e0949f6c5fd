"""Running a benchmark script the way the smoke tests do: in a scratch folder, with its JSON
report written under the test's temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@dataclass(frozen=True)
class BenchmarkRun:
    """What a run left: its JSON report, what it printed, and the scratch folder it used
    (which it must leave empty)."""

    report: dict[str, Any]
    stdout: str
    scratch: Path


def run_benchmark(tmp_path: Path, script: str, *options: str) -> BenchmarkRun:
    """Run ``benchmarks/<script>.py`` with ``options``, ``--out`` and ``--root`` under
    ``tmp_path``; fail with its stderr unless it exits 0."""
    out = tmp_path / "results" / f"{script}.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *options, "--out", str(out),
         "--root", str(scratch)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return BenchmarkRun(json.loads(out.read_text()), proc.stdout, scratch)
