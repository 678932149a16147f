"""Locust load test for fishpredict: the seed's nGrinder test, in Python.

Each simulated user asks ``GET /fish`` for one fish at a time (the seed's
API) and now and then ``POST /predict`` with a batch. Fish are the 49
training fish jittered by a few per cent, so every request is different yet
its species is known, and a wrong answer counts as a failure (see
``expected`` for which answers are right for which k).

    locust -f examples/locust/locustfile.py --host http://127.0.0.1:8070

See README.md beside this file for distributed (master/worker) runs.
Locust is not a fishpredict dependency: ``pip install locust``.
"""

from __future__ import annotations

import json
import os
import random
from urllib.parse import urlencode

from locust import FastHttpUser, constant, task

# The seed's 49 fish: (length cm, weight g), 35 bream then 14 smelt.
# fmt: off
BREAM = [
    (25.4, 242.0), (26.3, 290.0), (26.5, 340.0), (29.0, 363.0), (29.0, 430.0),
    (29.7, 450.0), (29.7, 500.0), (30.0, 390.0), (30.0, 450.0), (30.7, 500.0),
    (31.0, 475.0), (31.0, 500.0), (31.5, 500.0), (32.0, 340.0), (32.0, 600.0),
    (32.0, 600.0), (33.0, 700.0), (33.0, 700.0), (33.5, 610.0), (33.5, 650.0),
    (34.0, 575.0), (34.0, 685.0), (34.5, 620.0), (35.0, 680.0), (35.0, 700.0),
    (35.0, 725.0), (35.0, 720.0), (36.0, 714.0), (36.0, 850.0), (37.0, 1000.0),
    (38.5, 920.0), (38.5, 955.0), (39.5, 925.0), (41.0, 975.0), (41.0, 950.0),
]
SMELT = [
    (9.8, 6.7), (10.5, 7.5), (10.6, 7.0), (11.0, 9.7), (11.2, 9.8), (11.3, 8.7),
    (11.8, 10.0), (11.8, 9.9), (12.0, 9.8), (12.2, 12.2), (12.4, 13.4), (13.0, 12.2),
    (14.3, 19.7), (15.0, 19.9),
]
# fmt: on
#: the names a server may answer with, per species (``--labels en`` or ``ko``)
NAMES = {"bream": {"bream", "도미"}, "smelt": {"smelt", "빙어"}}
KS = (1, 5, 15, 25, 49)
#: rows per POST /predict batch (override with FISHPREDICT_BATCH_ROWS)
BATCH_ROWS = int(os.environ.get("FISHPREDICT_BATCH_ROWS", "100"))
JITTER = 0.05


def draw_fish(rng: random.Random) -> tuple[float, float, str]:
    """One fish near a training fish: (length, weight, species)."""
    species = "bream" if rng.random() < len(BREAM) / (len(BREAM) + len(SMELT)) else "smelt"
    length, weight = rng.choice(BREAM if species == "bream" else SMELT)
    scale = 1.0 + rng.uniform(-JITTER, JITTER)
    return round(length * scale, 1), round(weight * scale, 1), species


def expected(species: str, k: int) -> set[str]:
    """The names a correct answer may carry.

    k <= 5: the fish's own species. k = 49 votes with all 49 fish: bream, the
    majority. k = 15 or 25: either; near the class boundary the answer may
    legitimately flip (a small bream of ~240 g has all 14 smelt among its 25
    nearest fish, since weight dominates the unscaled distance).
    """
    if k == 49:
        return NAMES["bream"]
    if k <= 5:
        return NAMES[species]
    return NAMES["bream"] | NAMES["smelt"]


class FishUser(FastHttpUser):
    """A closed-loop user: the next request leaves as soon as the answer arrives,
    as nGrinder's threads did in the seed."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task(10)
    def fish(self) -> None:
        length, weight, species = draw_fish(self.rng)
        k = self.rng.choice(KS)
        query = urlencode({"length": length, "weight": weight, "k": k})
        with self.client.get(f"/fish?{query}", name="/fish", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}: {(resp.text or '')[:200]}")
                return
            answer = json.loads(resp.text or "null")
            if not isinstance(answer, dict) or answer.get("prediction") not in expected(species, k):
                resp.failure(f"wrong answer for a {species} with k={k}: {resp.text}")

    @task(1)
    def predict_batch(self) -> None:
        fish = [draw_fish(self.rng) for _ in range(BATCH_ROWS)]
        k = self.rng.choice(KS)
        body = {"instances": [[length, weight] for length, weight, _ in fish]}
        with self.client.post(
            f"/predict?k={k}", json=body, name="/predict (batch)", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}: {(resp.text or '')[:200]}")
                return
            predictions = json.loads(resp.text or "null").get("predictions", [])
            species = [s for _, _, s in fish]
            wrong = sum(p not in expected(s, k) for p, s in zip(predictions, species, strict=False))
            if len(predictions) != len(fish) or wrong:
                resp.failure(f"{wrong} wrong of {len(predictions)} (sent {len(fish)}) with k={k}")
