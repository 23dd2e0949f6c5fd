"""PyTorch loader benchmark: images/s through ``t.to_pytorch()`` in a ``DataLoader`` with two
workers, against a plain loop reading the same images from files with Pillow, in the same run.

    .venv/bin/python benchmarks/loader.py            # 2,000 images of 224x224, best of 3
    .venv/bin/python benchmarks/loader.py --quick    # 200 images, best of 1

The images are generated pictures of shapes (:mod:`lakehouse.samples.shapes`) scaled to 224x224
and saved as JPEG files (quality 90), then inserted from those files into a table ``images``
(``image`` Image, ``n`` Int). Every side decodes each image to a ``(3, 224, 224)`` uint8 tensor
(Pillow, RGB, channels first) and counts it; the figure is images/s over one epoch:

    lakehouse map        DataLoader(t.to_pytorch(columns=["image"]), batch_size=32,
                         num_workers=2): a batch is one Lance read, decoded in the worker
    lakehouse iterable   the same with to_pytorch(..., iterable=True): the rows shared between
                         the two workers
    plain loop           for path in files: Image.open(path) -> tensor, in this process (torch
                         on one thread, as in a DataLoader worker)
    files loader         a Dataset over the files in the same DataLoader (two workers): what
                         the two workers add, without the table

The ratio is lakehouse map / plain loop. No target: the issue asks for the figure beside the
plain loop. :func:`measure` runs it all and returns the figures (``benchmarks/maintenance.py``
imports it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from reporting import add_output_options, machine, table, write_report

import lakehouse as lh
from lakehouse.samples.shapes import samples

DEFAULTS = {"images": 2_000, "repeat": 3}
QUICK = {"images": 200, "repeat": 1}
SIDE = 224
BATCH = 32
WORKERS = 2


def make_images(folder: Path, n: int) -> list[Path]:
    """``n`` JPEG files of SIDE x SIDE pictures of shapes in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (picture, _) in enumerate(samples(n, seed=11)):
        path = folder / f"{i:06d}.jpg"
        picture.resize((SIDE, SIDE)).save(path, quality=90)
        paths.append(path)
    return paths


def _tensor(image: Image.Image) -> Any:
    import torch

    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


class FilesDataset:
    """The plain side's dataset: image files decoded with Pillow, as the table's are."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:
        with Image.open(self.paths[i]) as image:
            return {"image": _tensor(image)}


def _epoch(dataset: Any) -> int:
    """Images yielded by one DataLoader epoch (two workers, batches of BATCH)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS)
    return sum(int(batch["image"].shape[0]) for batch in loader)


def _plain_loop(paths: list[Path]) -> int:
    count = 0
    for path in paths:
        with Image.open(path) as image:
            count += int(_tensor(image).shape[0] == 3)
    return count


def _best_rate(run: Callable[[], int], expected: int, repeat: int) -> float:
    """The best images/s of ``repeat`` runs; each must yield every image."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        got = run()
        elapsed = time.perf_counter() - start
        if got != expected:
            raise RuntimeError(f"an epoch yielded {got} images, not {expected}")
        best = max(best, expected / elapsed)
    return best


def measure(root: Path, images: int = DEFAULTS["images"], repeat: int = 1) -> dict[str, Any]:
    """Make ``images`` JPEG files and a table of them under ``root``, then measure images/s of
    every side (see the module). Returns ``{"unit": "images/s", "images": n, "lakehouse_map":
    ..., "lakehouse_iterable": ..., "plain_loop": ..., "files_loader": ..., "ratio": map /
    plain loop}``."""
    import torch

    torch.set_num_threads(1)  # the plain loop's process works as one worker does
    warnings.filterwarnings("ignore", message="lance is not fork-safe")  # handles open after
    paths = make_images(root / "files", images)  # the fork, in each worker
    db = lh.connect(str(root / "lakehouse"))
    t = db.create_table("images", {"image": lh.Image, "n": lh.Int}, if_exists="replace")
    t.insert([{"image": str(p), "n": i} for i, p in enumerate(paths)], progress=False)
    rates = {
        "lakehouse_map": _best_rate(lambda: _epoch(t.to_pytorch(columns=["image"])),
                                    images, repeat),
        "lakehouse_iterable": _best_rate(
            lambda: _epoch(t.to_pytorch(columns=["image"], iterable=True)), images, repeat),
        "plain_loop": _best_rate(lambda: _plain_loop(paths), images, repeat),
        "files_loader": _best_rate(lambda: _epoch(FilesDataset(paths)), images, repeat),
    }
    return {"unit": "images/s", "images": images, "side": SIDE, "batch_size": BATCH,
            "workers": WORKERS, **{k: round(v, 1) for k, v in rates.items()},
            "ratio": round(rates["lakehouse_map"] / rates["plain_loop"], 3), "met": None}


def render(result: dict[str, Any]) -> str:
    rows = [("side", "images/s", "vs plain loop")]
    for key, label in (("lakehouse_map", "lakehouse map (2 workers)"),
                       ("lakehouse_iterable", "lakehouse iterable (2 workers)"),
                       ("plain_loop", "(plain loop, 1 process)"),
                       ("files_loader", "(files loader, 2 workers)")):
        rows.append((label, f"{result[key]:,.0f}", f"{result[key] / result['plain_loop']:.2f}x"))
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", "--small", action="store_true", dest="quick",
                        help=f"a quick run: {QUICK['images']} images, best of 1")
    parser.add_argument("--images", type=int, default=None,
                        help=f"images in the table (default {DEFAULTS['images']:,})")
    parser.add_argument("--repeat", type=int, default=None,
                        help="epochs of each side; the best counts (default 3, 1 quick)")
    add_output_options(parser, "loader", "files and tables")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    images, repeat = args.images or sizes["images"], args.repeat or sizes["repeat"]
    if images < BATCH or repeat < 1:
        parser.error(f"need --images >= {BATCH} and --repeat >= 1")
    info = machine(("lakehouse", "pylance", "torch", "pillow"))
    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="lh-bench-loader-", dir=args.root))
    try:
        result = measure(work, images, repeat)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"loader benchmark: {images:,} JPEG images of {SIDE}x{SIDE}, batches of {BATCH}, "
          f"best of {repeat}, on {info['cpu_count']} CPU(s) ({info['cpu_model']}), load "
          f"average {info['load_average'][0]:.1f} at start, lakehouse "
          f"{info['versions']['lakehouse']}")
    print(render(result))
    report = {"benchmark": "loader", "started": started.isoformat(timespec="seconds"),
              "quick": args.quick, "repeat": repeat, "machine": info,
              "operations": {"pytorch_loader": result}}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
