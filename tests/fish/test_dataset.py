from __future__ import annotations

import numpy as np
import pytest

from fishpredict.fish.dataset import BREAM, SMELT, SPECIES_NAMES, label_of, load_fish


def test_the_49_fish() -> None:
    fish = load_fish()
    assert fish.X.shape == (49, 2) and len(fish) == 49
    assert int((fish.y == BREAM).sum()) == 35 and int((fish.y == SMELT).sum()) == 14
    assert fish.X[0].tolist() == [25.4, 242.0]  # first bream of the seed
    assert fish.X[-1].tolist() == [15.0, 19.9]  # last smelt of the seed
    assert np.all(fish.y[:35] == BREAM)


def test_names() -> None:
    assert SPECIES_NAMES["ko"][BREAM] == "도미" and SPECIES_NAMES["ko"][SMELT] == "빙어"
    assert label_of("빙어") == SMELT and label_of("bream") == BREAM
    with pytest.raises(ValueError, match="unknown species"):
        label_of("tuna")
