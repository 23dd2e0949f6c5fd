"""The generated captioned shapes (training and evaluation data of the shipped CLIP model)
and the real sample photos."""

from __future__ import annotations

import numpy as np

from lakehouse.samples import sample_images, shapes


def test_the_same_seed_draws_the_same_pictures() -> None:
    first = list(shapes.samples(5, seed=7))
    again = list(shapes.samples(5, seed=7))
    other = list(shapes.samples(5, seed=8))
    assert [s for _, s in first] == [s for _, s in again]
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for (a, _), (b, _) in zip(first, again, strict=True))
    assert [s for _, s in first] != [s for _, s in other]


def test_a_picture_shows_its_colour_where_its_caption_says() -> None:
    scene = shapes.Scene("square", "red", "large", "left", "white")
    image = np.asarray(shapes.draw(scene))
    assert image.shape == (shapes.SIZE, shapes.SIZE, 3)
    red = np.all(image == shapes.COLOURS["red"], axis=-1)
    ys, xs = np.nonzero(red)
    assert xs.mean() < shapes.SIZE / 2  # on the left
    assert abs(ys.mean() - shapes.SIZE / 2) < 4
    assert red.sum() > 0.1 * shapes.SIZE**2  # large
    assert scene.caption == "a large red square on the left"


def test_shapes_differ_in_pixels_and_twins_differ_only_in_shape() -> None:
    scene = shapes.Scene("circle", "blue", "large", "middle", "black")
    pictures = {s: np.asarray(shapes.draw(scene.with_shape(s))) for s in shapes.SHAPES}
    for a in shapes.SHAPES:
        for b in shapes.SHAPES:
            if a != b:
                assert not np.array_equal(pictures[a], pictures[b])
    twin = scene.with_shape("star")
    assert (twin.colour, twin.size, twin.position, twin.background) == \
        (scene.colour, scene.size, scene.position, scene.background)


def test_partial_captions_name_a_subset_of_the_scene() -> None:
    scene = shapes.Scene("triangle", "yellow", "small", "top", "grey")
    assert shapes.partial_captions(scene) == [
        "a yellow triangle", "something yellow", "a small triangle", "a triangle at the top"]


def test_sample_photos_are_real_files() -> None:
    photos = sample_images()
    assert len(photos) == 10
    assert all(p.stat().st_size > 10_000 for p in photos)
