"""KServe's InferenceRESTClient against a server; run inside the kserve environment
(fishpredict.testing.kserve_env), not collected by pytest.

Reads a plan as JSON on stdin::

    {"url": ..., "models": [names],
     "v2": [{"model", "inputs": [{"name", "datatype", "shape", "data"}], "binary": bool,
             "outputs": [names]}],
     "v1": [{"model", "instances": [...]}]}

and prints what the client answered as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


def _plain(arr: Any) -> Any:
    arr = np.asarray(arr)
    if arr.dtype.kind in "OSU":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1).tolist()]
    return arr.reshape(-1).tolist()


async def v2(plan: dict[str, Any]) -> dict[str, Any]:
    url = plan["url"]
    out: dict[str, Any] = {}
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30)) as client:
        out["live"] = await client.is_server_live(url)
        out["ready"] = await client.is_server_ready(url)
        out["model_ready"] = {m: await client.is_model_ready(url, m) for m in plan["models"]}
        out["missing_ready"] = await client.is_model_ready(url, "no-such-model")
        answers = []
        for case in plan["v2"]:
            inputs = []
            for t in case["inputs"]:
                dtype = object if t["datatype"] == "BYTES" else None
                arr = np.array(t["data"], dtype=dtype).reshape(t["shape"])
                inp = InferInput(t["name"], t["shape"], t["datatype"])
                inp.set_data_from_numpy(arr, binary_data=case["binary"])
                inputs.append(inp)
            params = {"binary_data_output": True} if case["binary"] else None
            request = InferRequest(
                case["model"], inputs, request_id="kserve-1", parameters=params,
                request_outputs=[RequestedOutput(n) for n in case["outputs"]])
            response = await client.infer(url, request, model_name=case["model"])
            answers.append({"id": response.id, "model": response.model_name,
                            "outputs": {o.name: _plain(o.as_numpy())
                                        for o in response.outputs}})
        out["v2"] = answers
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=30)) as client:
        out["v1_ready"] = {m: await client.is_model_ready(url, m) for m in plan["models"]}
        out["v1"] = [await client.infer(url, {"instances": case["instances"]},
                                        model_name=case["model"]) for case in plan["v1"]]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(v2(json.load(sys.stdin)))))
