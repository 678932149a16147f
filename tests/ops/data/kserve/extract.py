"""Write KServe's CRD schemas as the JSON Schemas tests/ops/test_k8s.py validates against.

The schemas are the ``openAPIV3Schema`` of KServe's own CRDs
(``config/crd/full/`` of github.com/kserve/kserve), descriptions dropped,
gzipped. Run from a KServe checkout to refresh them:

    python tests/ops/data/kserve/extract.py /path/to/kserve COMMIT
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}


def strip(node: Any) -> Any:
    """``node`` without its ``description`` fields (most of a CRD's bytes)."""
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(repo: str, commit: str) -> None:
    for kind, name in CRDS.items():
        text = subprocess.run(["git", "-C", repo, "show", f"{commit}:config/crd/full/{name}"],
                              capture_output=True, text=True, check=True).stdout
        crd = yaml.safe_load(text)
        (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
        doc = {
            "source": f"github.com/kserve/kserve {commit} config/crd/full/{name}",
            "group": crd["spec"]["group"],
            "version": version["name"],
            "kind": kind,
            "schema": strip(version["schema"]["openAPIV3Schema"]),
        }
        out = HERE / f"{kind.lower()}.schema.json.gz"
        with gzip.open(out, "wt", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"), sort_keys=True)
        print(f"{out.name}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
