"""Real sample media shipped inside installed packages, located without importing them.

scikit-image's wheel carries photos in ``skimage/data`` (installed by the test extra); finding them
through :func:`importlib.util.find_spec` avoids importing scikit-image and its start-up cost.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(package: str) -> Path:
    """The folder of an installed package; fails clearly when the test extra is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{package} is not installed: pip install -e '.[test]'")
    return Path(spec.origin).parent


def image_path(name: str) -> Path:
    """A photo from scikit-image's data folder, e.g. ``image_path("astronaut.png")``."""
    path = package_dir("skimage") / "data" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing from the installed scikit-image")
    return path


ASTRONAUT = "astronaut.png"  # 512x512 RGB PNG
CAMERA = "camera.png"  # 512x512 L (greyscale) PNG
ROCKET = "rocket.jpg"  # 640x427 RGB JPEG
