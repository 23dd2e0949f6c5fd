"""Captioned pictures of shapes, generated on the fly: the data the shipped test CLIP model is
trained and evaluated on.

Each picture is one shape (circle, square, triangle or star) of a colour and a size, at a
position, on a background, drawn with Pillow; its caption says so in words ("a small red circle
on the left"), and :func:`partial_captions` gives the shorter queries a user would type ("a red
circle", "something yellow"). Everything follows from a seed, so a held-out set is the same on
every machine.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator

from PIL import Image, ImageDraw

SIZE = 64
SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "purple": (140, 60, 180), "orange": (245, 140, 30),
}
SIZES = {"small": 0.22, "large": 0.42}  # shape radius as a share of the picture
POSITIONS = {"left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28),
             "bottom": (0.5, 0.72), "middle": (0.5, 0.5)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (20, 20, 20), "grey": (128, 128, 128)}
_PLACE = {"left": "on the left", "right": "on the right", "top": "at the top",
          "bottom": "at the bottom", "middle": "in the middle"}


@dataclasses.dataclass(frozen=True)
class Scene:
    """What one picture shows."""

    shape: str
    colour: str
    size: str
    position: str
    background: str

    @property
    def caption(self) -> str:
        """The full caption: ``"a small red circle on the left"``.

        >>> Scene("circle", "red", "small", "left", "white").caption
        'a small red circle on the left'
        """
        return f"a {self.size} {self.colour} {self.shape} {_PLACE[self.position]}"

    def with_shape(self, shape: str) -> Scene:
        return dataclasses.replace(self, shape=shape)


def random_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(SIZES)),
                 rng.choice(list(POSITIONS)), rng.choice(list(BACKGROUNDS)))


def draw(scene: Scene, rng: random.Random | None = None) -> Image.Image:
    """The picture of ``scene``; ``rng`` jitters position and size a little, as photos vary.

    >>> picture = draw(Scene("star", "yellow", "large", "middle", "black"))
    >>> picture.size, picture.getpixel((32, 32))  # the middle is yellow
    ((64, 64), (240, 210, 40))
    """
    jitter = (lambda: rng.uniform(-0.05, 0.05)) if rng is not None else (lambda: 0.0)
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUNDS[scene.background])
    pen = ImageDraw.Draw(image)
    cx, cy = POSITIONS[scene.position]
    cx, cy = (cx + jitter()) * SIZE, (cy + jitter()) * SIZE
    r = (SIZES[scene.size] / 2 + jitter() / 4) * SIZE
    fill = COLOURS[scene.colour]
    if scene.shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        pen.polygon(_star(cx, cy, r), fill=fill)
    return image


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def partial_captions(scene: Scene) -> list[str]:
    """Shorter queries that match ``scene``: ``"a red circle"``, ``"something yellow"``, ...

    >>> partial_captions(Scene("circle", "red", "small", "left", "white"))
    ['a red circle', 'something red', 'a small circle', 'a circle on the left']
    """
    return [f"a {scene.colour} {scene.shape}", f"something {scene.colour}",
            f"a {scene.size} {scene.shape}", f"a {scene.shape} {_PLACE[scene.position]}"]


def scenes(n: int, seed: int) -> list[Scene]:
    """``n`` scenes drawn at random from ``seed``."""
    rng = random.Random(seed)
    return [random_scene(rng) for _ in range(n)]


def samples(n: int, seed: int, *, jitter: bool = True) -> Iterator[tuple[Image.Image, Scene]]:
    """``n`` (picture, scene) pairs from ``seed``; the same seed gives the same pictures.

    >>> picture, scene = next(samples(1, seed=7))
    >>> picture.size, scene == next(samples(1, seed=7))[1]
    ((64, 64), True)
    """
    rng = random.Random(seed)
    for _ in range(n):
        scene = random_scene(rng)
        yield draw(scene, rng if jitter else None), scene
