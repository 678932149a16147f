"""The 49 fish of the seed experiment, and the species names.

Features are always ``(length_cm, weight_g)`` in that order. Labels are
integers: ``1`` = bream, ``0`` = smelt, as in the seed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

FEATURES: Final = ("length", "weight")
CSV_COLUMNS: Final = ("Length", "Weight", "Species")
BREAM: Final = 1
SMELT: Final = 0

Language = Literal["en", "ko"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "ko")

#: label -> species name, per language
SPECIES_NAMES: Final[dict[Language, dict[int, str]]] = {
    "en": {BREAM: "bream", SMELT: "smelt"},
    "ko": {BREAM: "도미", SMELT: "빙어"},
}


def label_of(name: str) -> int:
    """The integer label of a species name in any known language."""
    for names in SPECIES_NAMES.values():
        for label, species in names.items():
            if species == name:
                return label
    raise ValueError(f"unknown species {name!r}; known: bream, smelt, 도미, 빙어")


@dataclass(frozen=True)
class FishData:
    """Features ``X`` of shape (n, 2) and labels ``y`` of shape (n,)."""

    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_fish() -> FishData:
    """The 49 built-in fish (35 bream then 14 smelt), read from package data."""
    text = resources.files("fishpredict").joinpath("data/fish.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    X = np.array([[float(r["Length"]), float(r["Weight"])] for r in rows], dtype=np.float64)
    y = np.array([label_of(r["Species"]) for r in rows], dtype=np.int64)
    return FishData(X=X, y=y)


def fish_signature() -> dict[str, object]:
    """The manifest part of a fish model's signature: ``length`` and ``weight``, both
    ``>= 0``, classes ``0``/``1`` shown as smelt/bream (빙어/도미)."""
    return {
        "features": [{"name": name, "kind": "number", "minimum": 0.0} for name in FEATURES],
        "allows_nan": False,
        "display": {
            lang: [SPECIES_NAMES[lang][SMELT], SPECIES_NAMES[lang][BREAM]] for lang in LANGUAGES
        },
    }
