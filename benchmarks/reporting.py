"""What every benchmark records: the machine it ran on (so figures can be compared) and its
JSON report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Iterable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any


def machine(packages: Iterable[str]) -> dict[str, Any]:
    """CPU, memory, platform, load average and the versions of ``packages``."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 2**20 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), None)
    versions = {}
    for name in packages:
        try:
            versions[name] = package_version(name)
        except Exception:
            versions[name] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu,
        "memory_gib": round(mem, 1) if mem else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "versions": versions,
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_report(report: dict[str, Any], out: str | Path) -> None:
    """Write ``report`` as indented JSON to ``out`` (creating its folder) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows of text as an aligned plain-text table: the first row is the header, underlined;
    the first column is aligned left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def add_output_options(parser: argparse.ArgumentParser, name: str, scratch: str) -> None:
    """The options every benchmark shares: ``--out`` (default ``results/<name>.json`` beside
    the scripts), ``--root`` (where scratch ``scratch`` go, removed afterwards) and ``--keep``."""
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / f"{name}.json"),
                        help="where to write the JSON results")
    parser.add_argument("--root", default=tempfile.gettempdir(),
                        help=f"local folder for the scratch {scratch} (removed afterwards)")
    parser.add_argument("--keep", action="store_true", help=f"keep the scratch {scratch}")
