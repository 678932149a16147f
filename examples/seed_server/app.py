"""A faithful copy of the server the seed load-tested: FastAPI + uvicorn, port 8080.

``GET /fish?length=<cm>&weight=<g>&k=<neighbours>`` answers
``{"prediction": "도미" | "빙어", "length": ..., "weight": ...}``.

First version (the default here): the handler opens and unpickles the model
file on EVERY request. Second version (``--load-once``): load every model once
and keep them in a global. Kept only as the baseline that
``fishpredict perf serving`` and ``fishpredict experiment seed`` measure
fishpredict against; it has none of fishpredict's checks on purpose.

    python examples/seed_server/app.py --port 8080 --models /tmp/seed-models
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import uvicorn
from fastapi import FastAPI

MODEL_DIR = Path(os.environ.get("SEED_MODEL_DIR", "seed-models"))
LOAD_ONCE = os.environ.get("SEED_LOAD_ONCE") == "1"
KS = (1, 5, 15, 25, 49)

app = FastAPI()
_models: dict[int, object] = {}


def make_models(directory: Path) -> None:
    """Write model_k<k>.pkl for every k, as the seed did (one pickle per k)."""
    from fishpredict.fish.training import train

    directory.mkdir(parents=True, exist_ok=True)
    for k in KS:
        with open(directory / f"model_k{k}.pkl", "wb") as f:
            pickle.dump(train(k), f)


def load_model(k: int) -> object:
    with open(MODEL_DIR / f"model_k{k}.pkl", "rb") as f:
        return pickle.load(f)  # the seed's design (unsafe on untrusted files), measured on purpose


@app.get("/fish")
def fish(length: float, weight: float, k: int = 5) -> dict[str, object]:
    model = _models[k] if LOAD_ONCE else load_model(k)
    prediction = model.predict([[length, weight]])[0]  # type: ignore[attr-defined]
    return {"prediction": "도미" if prediction == 1 else "빙어",
            "length": length, "weight": weight}


def main() -> None:
    global MODEL_DIR, LOAD_ONCE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--models", default=str(MODEL_DIR))
    parser.add_argument("--load-once", action="store_true",
                        help="the seed's second version: load the models once")
    args = parser.parse_args()
    MODEL_DIR = Path(args.models)
    LOAD_ONCE = args.load_once
    if not all((MODEL_DIR / f"model_k{k}.pkl").exists() for k in KS):
        make_models(MODEL_DIR)
    if LOAD_ONCE:
        _models.update({k: load_model(k) for k in KS})
    print(f"seed server on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
