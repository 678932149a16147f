"""Serving needs neither prometheus-client nor psutil (``pip install ".[socket]"``):
/fish answers without them ever imported, and /metrics then says what to install.

Each test runs Python with an import hook that refuses both packages, as a venv
without them would.
"""

from __future__ import annotations

import json
import subprocess
import sys

from fishpredict.server.process import ServerProcess

BLOCK = """
import sys
class _Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("prometheus_client", "psutil"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Refuse())
"""

IN_PROCESS = BLOCK + """
import json
from fishpredict import Predictor
from fishpredict.app.service import Service
service = Service(Predictor())
fish = service.handle("GET", "/fish", "length=30&weight=600&k=5", {})
v2 = service.handle("POST", "/v2/models/knn-k5/infer", "", {},
                    b'{"inputs":[{"name":"x","datatype":"FP64","shape":[1,2],"data":[30,600]}]}')
general = service.handle_general("GET", "/fish", "length=31&weight=650", {})
scrape = service.handle("GET", "/metrics", "", {})
print(json.dumps({
    "fish": [fish.status, fish.body.decode()], "v2": v2.status, "general": general.status,
    "metrics": [scrape.status, json.loads(scrape.body)],
    "loaded": sorted(m for m in sys.modules
                     if m.split(".")[0] in ("prometheus_client", "psutil")),
}))
"""


def test_the_service_serves_without_prometheus_client_or_psutil() -> None:
    out = subprocess.run([sys.executable, "-c", IN_PROCESS], capture_output=True, text=True,
                         timeout=120, check=True)
    got = json.loads(out.stdout)
    assert got["fish"] == [200, '{"prediction":"bream","length":30.0,"weight":600.0,"k":5,'
                                '"model":"knn-k5"}']
    assert got["v2"] == 200 and got["general"] == 200
    assert got["loaded"] == []
    status, doc = got["metrics"]
    assert status == 501
    assert doc["error"]["code"] == "metrics_unavailable"
    assert "pip install 'fishpredict[serve]'" in doc["error"]["message"]


def test_fishpredict_serve_on_the_socket_backend_without_them() -> None:
    serve = BLOCK + (
        "from fishpredict.cli import main\n"
        "sys.argv = ['fishpredict', 'serve', '--backend', 'socket', '--host', '127.0.0.1',"
        " '--port', '0', '--log-level', 'warning']\n"
        "sys.exit(main())\n"
    )
    with ServerProcess("socket", [sys.executable, "-c", serve]) as srv:
        client = srv.client(timeout=10)
        fish = client.request("GET", "/fish?length=30&weight=600&k=5")
        assert fish.status == 200 and b'"prediction":"bream"' in fish.body
        scrape = client.request("GET", "/metrics")
        assert scrape.status == 501
        assert "fishpredict[serve]" in scrape.json()["error"]["message"]
