"""ImageNet facts lesson 03 checks its predictions against: class ids (wnids) and top-1 accuracy on photos named
after their wnid (``n02088364_beagle.jpg``); lesson 05 compares that record."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ImageError

IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1k's training images, what every weights="imagenet" model learned from
ESPRESSO_WNID = "n07920052"  # ImageNet's "espresso" class (lesson 03 checks the coffee photo)
DOMESTIC_CAT_WNIDS: dict[str, str] = {  # ImageNet's five house-cat classes: lesson 03 checks a cat photo's top 5
    "n02123045": "tabby", "n02123159": "tiger_cat", "n02123394": "Persian_cat",
    "n02123597": "Siamese_cat", "n02124075": "Egyptian_cat",
}


def wnid_from_filename(path: str | os.PathLike) -> str | None:
    """The ImageNet class id at the start of a file name such as ``n02088364_beagle.jpg`` (lesson 03)."""
    stem = Path(path).name.split("_", 1)[0]
    return stem if len(stem) == 9 and stem[0] == "n" and stem[1:].isdigit() else None


def top1_accuracy(decoded: Sequence[Sequence[tuple]], paths: Sequence[str | os.PathLike]) -> tuple[float, int]:
    """``(accuracy, photos with a wnid)`` of ``decode_predictions`` rows against each file name's wnid (lesson 03)."""
    hits = [str(row[0][0]) == true for row, p in zip(decoded, paths) if (true := wnid_from_filename(p)) is not None]
    if not hits:
        raise ImageError("no file name starts with an ImageNet wnid (e.g. n02088364_beagle.jpg)")
    return float(np.mean(hits)), len(hits)
