"""Real sample photos for the demo and the examples, found in installed packages (never
downloaded): scikit-image ships a dozen photos inside its wheel (``pip install lakehouse[demo]``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lakehouse.errors import Error

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
          "retina.jpg", "motorcycle_left.png", "camera.png", "coins.png", "moon.png")


def sample_images() -> list[Path]:
    """Paths of real photos (an astronaut, a cat, a cup of coffee, a rocket, ...).

    >>> [path.name for path in sample_images()[:3]]
    ['astronaut.png', 'chelsea.png', 'coffee.png']
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise Error("the sample photos come with scikit-image: pip install 'lakehouse[demo]'")
    folder = Path(spec.origin).parent / "data"
    return [folder / name for name in PHOTOS if (folder / name).exists()]
