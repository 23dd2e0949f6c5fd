"""PyTorch datasets from ``t.to_pytorch`` / ``q.to_pytorch``: a DataLoader epoch with two worker
processes yields every row exactly once (map-style and iterable), images come as CHW tensors,
arrays as tensors, shuffles and splits follow the seed, the datasets pickle without a Lance
handle and read the version they were made from. Local and S3 through the ``db`` fixture."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from media_samples import CAMERA, image_path
from PIL import Image
from torch.utils.data import DataLoader

import lakehouse as lh
from lakehouse.export.row_server import ForkedReads
from lakehouse.samples.shapes import samples

ROWS = 24
# Lance warns at every fork; the datasets open their handles in the workers, after it
pytestmark = pytest.mark.filterwarnings("ignore:lance is not fork-safe")


@pytest.fixture
def shapes(db) -> lh.Table:
    """ROWS pictures of shapes (64x64 RGB), numbered, with their caption and a small vector."""
    t = db.create_table("shapes", {"image": lh.Image, "n": lh.Int, "caption": lh.String,
                                   "v": lh.Array[(2,), "float32"]})
    t.insert([{"image": img, "n": i, "caption": scene.caption, "v": [i, -i]}
              for i, (img, scene) in enumerate(samples(ROWS, seed=5))], progress=False)
    return t


def _numbers(loader: DataLoader) -> list[int]:
    return [int(n) for batch in loader for n in batch["n"]]


@pytest.mark.parametrize("iterable", [False, True], ids=["map", "iterable"])
def test_an_epoch_with_two_workers_yields_every_row_once(shapes, iterable: bool) -> None:
    ds = shapes.to_pytorch(iterable=iterable)
    loader = DataLoader(ds, batch_size=5, num_workers=2)
    batches = list(loader)
    numbers = [int(n) for b in batches for n in b["n"]]
    assert sorted(numbers) == list(range(ROWS))
    first = batches[0]
    assert first["image"].shape == (5, 3, 64, 64) and first["image"].dtype == torch.uint8
    assert first["v"].dtype == torch.float32 and first["v"].shape == (5, 2)
    assert isinstance(first["caption"][0], str)


@pytest.mark.slow  # each spawned worker imports torch and lakehouse: about 15 s
def test_spawned_workers_open_their_own_handles(shapes) -> None:
    """With spawn (Lance's advice: it is not fork-safe), the dataset travels pickled."""
    ds = shapes.to_pytorch(columns=["n"], iterable=True)
    loader = DataLoader(ds, batch_size=6, num_workers=2, multiprocessing_context="spawn")
    assert sorted(_numbers(loader)) == list(range(ROWS))


def test_images_are_the_pictures_channels_first(db) -> None:
    t = db.create_table("photos", {"image": lh.Image})
    t.insert([{"image": str(image_path(CAMERA))}], progress=False)  # a greyscale PNG
    expected = np.asarray(Image.open(image_path(CAMERA)).convert("RGB"))
    pixels = t.to_pytorch()[0]["image"]
    assert pixels.shape == (3, 512, 512) and pixels.dtype == torch.uint8
    assert np.array_equal(pixels.permute(1, 2, 0).numpy(), expected)
    floats = t.to_pytorch(images="float")[0]["image"]
    assert floats.dtype == torch.float32
    assert torch.allclose(floats * 255, pixels.float())


def test_media_kept_by_reference_are_read_from_their_source(db) -> None:
    t = db.create_table("refs", {"image": lh.Image(store="reference"), "label": lh.String})
    t.insert([{"image": str(image_path(CAMERA)), "label": "camera"}], progress=False)
    loader = DataLoader(t.to_pytorch(iterable=True), batch_size=1, num_workers=2)
    (batch,) = list(loader)
    assert batch["label"] == ["camera"] and batch["image"].shape == (1, 3, 512, 512)


@pytest.mark.parametrize("iterable", [False, True], ids=["map", "iterable"])
def test_the_same_seed_shuffles_the_same_order(shapes, iterable: bool) -> None:
    def order(seed: int) -> list[int]:
        ds = shapes.to_pytorch(columns=["n"], shuffle=True, seed=seed, iterable=iterable)
        return _numbers(DataLoader(ds, batch_size=4, num_workers=2))

    first = order(1)
    assert sorted(first) == list(range(ROWS)) and first != list(range(ROWS))
    assert order(1) == first
    assert order(2) != first


def test_a_dataset_pickles_without_its_lance_handle(shapes) -> None:
    ds = shapes.to_pytorch(columns=["n", "caption"], transform=lambda r: r["n"])
    assert ds[3] == 3  # opens a handle in this process
    copy = pickle.loads(pickle.dumps(ds.__class__(ds.reader, ds.positions, None)))
    assert copy[3]["n"] == 3
    assert "_dataset" not in pickle.loads(pickle.dumps(ds.reader)).__getstate__()


def test_a_dataset_reads_the_version_it_was_made_from(shapes) -> None:
    ds = shapes.to_pytorch(columns=["n"])
    it = shapes.to_pytorch(columns=["n"], iterable=True)
    version = shapes.table_version
    shapes.insert([{"n": 100}], progress=False)
    shapes.delete(where=shapes.n < 3)
    assert ds.version == it.version == version
    assert [ds[i]["n"] for i in range(len(ds))] == list(range(ROWS))
    assert [row["n"] for row in it] == list(range(ROWS))


def test_split_is_disjoint_complete_and_follows_the_seed(shapes) -> None:
    ds = shapes.to_pytorch(columns=["n"])
    train, test = ds.split([0.75, 0.25], seed=4)
    assert (len(train), len(test)) == (18, 6)
    train_rows = {row["n"] for row in train.__getitems__(list(range(len(train))))}
    test_rows = {row["n"] for row in test.__getitems__(list(range(len(test))))}
    assert not train_rows & test_rows and train_rows | test_rows == set(range(ROWS))
    again = ds.split([0.75, 0.25], seed=4)[1]
    assert [again[i]["n"] for i in range(6)] == [test[i]["n"] for i in range(6)]
    other = ds.split([0.75, 0.25], seed=5)[1]
    assert {other[i]["n"] for i in range(6)} != test_rows
    with pytest.raises(lh.InvalidOptionError, match="sum to 1"):
        ds.split([0.5, 0.4])
    assert len(torch.utils.data.random_split(ds, [0.5, 0.5])[0]) == ROWS // 2


def test_a_query_gives_its_rows_and_columns(shapes) -> None:
    q = shapes.where(shapes.n % 2 == 0).select(shapes.n, shapes.caption)
    ds = q.to_pytorch()
    assert len(ds) == ROWS // 2
    assert set(ds[0]) == {"n", "caption"}
    loader = DataLoader(q.to_pytorch(iterable=True), batch_size=3, num_workers=2)
    assert sorted(_numbers(loader)) == list(range(0, ROWS, 2))
    with pytest.raises(lh.UnsupportedError, match="is an expression"):
        shapes.select(double=shapes.n * 2).to_pytorch()
    with pytest.raises(lh.UnsupportedError, match="drop order_by"):
        shapes.order_by(shapes.n).to_pytorch()
    with pytest.raises(lh.InvalidOptionError, match="shuffle=True"):
        shapes.to_pytorch(seed=3)


def test_without_torch_the_error_says_how_to_install_it(shapes, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(lh.ModelsNotInstalledError, match=r"lakehouse\[models\]"):
        shapes.to_pytorch()


def test_a_forked_worker_reads_through_a_process_of_its_own(shapes: lh.Table) -> None:
    """Lance is not fork-safe: after a fork the child's reads go to a fresh reader process it
    starts (a child of the fork, running lakehouse.export.row_server), never to Lance in the
    forked process; the parent keeps reading directly."""
    ds = shapes.to_pytorch(columns=["n", "caption"])
    assert ds[3]["n"] == 3  # the parent has used Lance before the fork
    done, report = os.pipe()
    child = os.fork()
    if child == 0:  # the forked process: report what it read and which processes it started
        try:
            rows = [ds[i]["n"] for i in (5, 1)]
            kids = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
            commands = [Path(f"/proc/{k}/cmdline").read_bytes() for k in kids]
            os.write(report, json.dumps({"rows": rows, "servers": sum(
                b"lakehouse.export.row_server" in c for c in commands)}).encode())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    seen = json.loads(os.read(done, 4096))
    assert seen == {"rows": [5, 1], "servers": 1}
    assert ds[7]["n"] == 7


def test_a_reader_process_that_fails_is_a_storage_error(shapes: lh.Table) -> None:
    ds = shapes.to_pytorch(columns=["n"])
    wrong = dataclasses.replace(ds.reader.source, version=shapes.version + 50)
    with pytest.raises(lh.StorageError, match="'shapes'.*forked DataLoader worker"):
        ForkedReads(wrong).read([0])
