"""A weighted mix of requests in one run: ``--mix WEIGHT:key=value,...`` (repeatable).

Each item is the run's own settings with some changed: ``endpoint``, ``k``,
``model``, ``data`` (a fish data file), ``batch-rows``, ``body``, and an
optional ``name`` for the reports::

    --mix 3:endpoint=fish,k=5 --mix 1:endpoint=batch,k=15,batch-rows=8 \\
    --mix 1:endpoint=v2,model=knn-k1,name=v2-k1

:func:`build_mix_pool` builds each item's requests as a run of its own would,
then deals them into one pool by weight (smooth weighted round robin, so every
stretch of the pool has the items in proportion). Each request remembers its
item, and the engine records it under that item: the report has statistics
for each (requests, errors by kind, TPS, latency percentiles).
"""

from __future__ import annotations

from collections.abc import Sequence

from fishpredict.bench.config import ENDPOINTS, NO_MODEL_ENDPOINTS, BenchConfig
from fishpredict.bench.payloads import Pool, build_pool
from fishpredict.errors import ConfigError

KEYS = ("endpoint", "k", "model", "data", "batch-rows", "body", "name")


def parse_mix_item(text: str) -> tuple[float, str]:
    """``"3:endpoint=fish,k=5"`` -> ``(3.0, "endpoint=fish,k=5")`` (checked)."""
    weight_text, sep, spec = text.partition(":")
    try:
        weight = float(weight_text) if sep else 1.0
    except ValueError:
        raise ConfigError(f"bad mix item {text!r}: expected WEIGHT:key=value,...") from None
    if not sep:
        spec = text
    if not 0 < weight < 1e9:
        raise ConfigError(f"bad mix item {text!r}: the weight must be positive")
    item_options(spec)
    return weight, spec


def item_options(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ConfigError(f"bad mix setting {part.strip()!r}: known keys are "
                              f"{', '.join(KEYS)} (key=value)")
        out[key] = value.strip()
    if "endpoint" in out and out["endpoint"] not in ENDPOINTS:
        raise ConfigError(f"unknown endpoint {out['endpoint']!r} in mix item {spec!r}")
    return out


def item_config(config: BenchConfig, spec: str, pool_size: int) -> BenchConfig:
    """The run's config with one mix item's settings."""
    o = item_options(spec)
    changes: dict[str, object] = {"mix": (), "pool_size": pool_size}
    try:
        if "endpoint" in o:
            changes["endpoint"] = o["endpoint"]
        if "k" in o:
            changes["ks"] = (int(o["k"]),)
        if "model" in o:
            changes["model"] = o["model"]
        elif o.get("endpoint") in NO_MODEL_ENDPOINTS:
            changes["model"] = None  # the run's --model is for its other items
        if "data" in o:
            changes["data"] = o["data"]
        if "batch-rows" in o:
            changes["batch_rows"] = int(o["batch-rows"])
        if "body" in o:
            changes["body"] = o["body"]
    except ValueError as exc:
        raise ConfigError(f"bad number in mix item {spec!r}: {exc}") from None
    return config.with_(**changes).validated()


def item_name(spec: str) -> str:
    o = item_options(spec)
    return o.get("name") or ",".join(f"{k}={v}" for k, v in o.items()) or "default"


def deal(weights: Sequence[float], n: int) -> list[int]:
    """``n`` picks of item indices in proportion to ``weights`` (smooth weighted round
    robin: deterministic, and every stretch is close to the proportions)."""
    total = sum(weights)
    current = [0.0] * len(weights)
    out = []
    for _ in range(n):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=lambda i: current[i])
        current[best] -= total
        out.append(best)
    return out


def build_mix_pool(config: BenchConfig) -> Pool:
    """One pool holding every mix item's requests, dealt by weight."""
    items = config.mix
    weights = [w for w, _ in items]
    names = [item_name(spec) for _, spec in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"mix items need distinct names, got {names}")
    order = deal(weights, max(config.pool_size, 4 * len(items)))
    pools = []
    for i, (_, spec) in enumerate(items):
        need = max(1, order.count(i))
        pools.append(build_pool(item_config(config, spec, need)))
    reqs, exp, groups, item_of = [], [], [], []
    used = [0] * len(items)
    for i in order:
        p = pools[i]
        j = used[i] % len(p)
        used[i] += 1
        reqs.append(p.requests[j])
        exp.append(p.expected[j])
        groups.append(f"{names[i]}: {(p.groups or ('',) * len(p))[j]}")
        item_of.append(i)
    rows = {p.rows_per_request for p in pools}
    return Pool(
        tuple(reqs),
        tuple(exp),
        rows.pop() if len(rows) == 1 else 1,
        "mix of " + ", ".join(f"{w:g} x {n}" for w, n in zip(weights, names, strict=True)),
        item_of=tuple(item_of),
        items=tuple(names),
        groups=tuple(groups),
    )
