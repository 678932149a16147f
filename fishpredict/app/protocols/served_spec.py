"""The spec a server answers at ``/openapi.json``: ``openapi.json`` made exact for the
models it has loaded.

The file describes any server: a row is "some values", a V2 tensor "some
shape". A request valid by that schema may still be refused with a 400 by a
given model (13 features where it takes 2), so a tool that takes the spec at
its word (schemathesis: "schema-valid request rejected") finds the server and
its spec at odds. The served spec says what this server's models take:

- ``/predict``: rows of the default model (its features, kinds, bounds,
  categories, missing values), and ``model``/``k`` pick among the models that
  take the same rows; ``proba`` only where they give probabilities.
- ``/fish``: only models of (length, weight); left out when there are none.
- V1 and V2: one concrete path per model (``/v2/models/iris/infer``,
  ``/v2/models/iris/versions/<version>/infer`` ...) with that model's request
  body (a V2 body is described as one row, the protocol's general form
  being in the operation's description) instead of the templated paths
  (any other name answers 404).

What no spec can say is which finite values an estimator refuses (a tree's
float32 cast, a scaler that overflows): such a row gets the documented 400
``model_refused``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fishpredict.app.protocols.v2 import version_of
from fishpredict.models.loaded import LoadedModel
from fishpredict.models.signature import Feature, Signature
from fishpredict.predictor import Predictor

_SAFE_NAME = re.compile(r"^[^/{}?#%\s]+$")


def _value(f: Feature, sig: Signature, text_null: bool = True) -> dict[str, Any]:
    if f.kind == "string":
        schema: dict[str, Any] = ({"enum": list(f.categories)} if f.categories is not None
                                  else {"type": "string"})
        if sig.allows_nan and text_null:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    schema = {"type": ["number", "null"] if sig.allows_nan else "number"}
    if f.minimum is not None:
        schema["minimum"] = f.minimum
    if f.maximum is not None:
        schema["maximum"] = f.maximum
    return schema


def row_schema(sig: Signature) -> dict[str, Any]:
    """One row of a model: a list in feature order, or an object keyed by name."""
    d = sig.n_features
    as_list = {"type": "array", "prefixItems": [_value(f, sig) for f in sig.features],
               "minItems": d, "maxItems": d}
    as_object = {"type": "object", "required": list(sig.names), "additionalProperties": False,
                 "properties": {f.name: _value(f, sig) for f in sig.features}}
    return {"oneOf": [as_list, as_object]} if d else as_list


def _rows_key(model: LoadedModel) -> str:
    return repr(row_schema(model.signature))


def _v1_body(sig: Signature) -> dict[str, Any]:
    return {"type": "object", "required": ["instances"], "properties": {
        "instances": {"type": "array", "items": row_schema(sig)}}}


def _v2_body(model: LoadedModel) -> dict[str, Any]:
    sig = model.signature
    no_binary = {"type": "object", "properties": {"binary_data_size": False}}
    if sig.frame:
        inputs = [{
            "type": "object", "required": ["name", "datatype", "shape", "data"],
            "properties": {
                "name": {"const": f.name},
                "datatype": {"const": "BYTES" if f.kind == "string" else "FP64"},
                "shape": {"const": [1]},
                "data": {"type": "array", "minItems": 1, "maxItems": 1,
                         "prefixItems": [_value(f, sig, text_null=False)]},
                "parameters": no_binary}} for f in sig.features]
        content_types = ["pd", "np"]  # one tensor per feature either way
    else:
        d = sig.n_features
        inputs = [{
            "type": "object", "required": ["name", "datatype", "shape", "data"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "datatype": {"const": "FP64"},
                "shape": {"const": [1, d]},
                "data": {"type": "array", "minItems": d, "maxItems": d,
                         "prefixItems": [_value(f, sig) for f in sig.features]},
                "parameters": no_binary}}]
        content_types = ["np"]
    n = len(inputs)
    return {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {
            "binary_data_output": {"type": "boolean"}, "content_type": {"enum": content_types}}},
        "inputs": {"type": "array", "minItems": n, "maxItems": n, "prefixItems": inputs},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"enum": list(sig.outputs)},
                "parameters": {"type": "object",
                               "properties": {"binary_data": {"type": "boolean"}}}}}}}}


def _concrete(doc: dict[str, Any], template: str, values: dict[str, str],
              suffix: str) -> tuple[str, dict[str, Any]]:
    """A copy of ``template``'s path item with its path parameters filled in."""
    path = template
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    item = copy.deepcopy(doc["paths"][template])
    drop = {f"#/components/parameters/{p}" for p in ("ModelName", "ModelVersion")}
    for op in item.values():
        op["parameters"] = [p for p in op.get("parameters", []) if p.get("$ref") not in drop]
        if not op["parameters"]:
            del op["parameters"]
        op["operationId"] = f"{op['operationId']}_{suffix}"
    return path, item


def _protocol_paths(doc: dict[str, Any], models: list[LoadedModel]) -> None:
    paths = doc["paths"]
    added: dict[str, Any] = {}
    served = [m for m in models if _SAFE_NAME.match(m.name)]
    for i, m in enumerate(served):
        suffix = f"m{i}"
        fill = {"name": m.name, "version": version_of(m)}
        for template in [p for p in paths if "{name}" in p]:
            path, item = _concrete(doc, template, fill, suffix)
            post = item.get("post")
            if post is not None and template.endswith(("/infer", ":predict")):
                schema = _v2_body(m) if template.startswith("/v2/") else _v1_body(m.signature)
                post["requestBody"]["content"]["application/json"]["schema"] = schema
            added[path] = item
    if len(served) == len(models):  # every model has its paths: the templates go
        for template in [p for p in paths if "{name}" in p]:
            del paths[template]
    paths.update(added)


def _query_param(op: dict[str, Any], ref: str) -> dict[str, Any] | None:
    for i, p in enumerate(op.get("parameters", [])):
        if p.get("$ref") == ref:
            resolved: dict[str, Any] = {}
            op["parameters"][i] = resolved
            return resolved
    return None


def _pick_params(doc: dict[str, Any], op: dict[str, Any], group: list[LoadedModel],
                 required: bool) -> None:
    """``model``, ``k`` and ``proba`` of one operation, limited to ``group``."""
    params = doc["components"]["parameters"]
    model = _query_param(op, "#/components/parameters/Model")
    if model is not None:
        model.update(copy.deepcopy(params["Model"]))
        model["schema"] = {"enum": [m.name for m in group]}
        model["required"] = required
    k = _query_param(op, "#/components/parameters/K")
    if k is not None:
        ks = sorted({m.info.k for m in group if m.info.k is not None})
        if ks and not required:
            k.update(copy.deepcopy(params["K"]))
            k["schema"] = {"type": "integer", "enum": ks}
        else:
            op["parameters"].remove(k)
    proba = _query_param(op, "#/components/parameters/Proba")
    if proba is not None:
        proba.update(copy.deepcopy(params["Proba"]))
        if not all(m.has_proba for m in group):
            proba["schema"] = {"type": "string", "enum": ["false", "0", "no"]}


def _native_paths(doc: dict[str, Any], predictor: Predictor, models: list[LoadedModel]) -> None:
    paths = doc["paths"]
    default = predictor.model(None)
    same = [m for m in models if _rows_key(m) == _rows_key(default)]
    if "/predict" in paths:
        op = paths["/predict"]["post"]
        rows = row_schema(default.signature)
        schemas = doc["components"]["schemas"]
        schemas["Row"] = rows
        if default.signature.n_features:
            obj = copy.deepcopy(rows["oneOf"][1])
            obj["not"] = {"required": ["instances"]}
            schemas["OneFish"] = obj
        op["requestBody"]["content"]["application/json"].pop("examples", None)
        _pick_params(doc, op, same, required=False)
    if "/fish" in paths:
        fish = [m for m in models if m.signature.names == ("length", "weight")]
        if not fish:
            del paths["/fish"]
            return
        op = paths["/fish"]["get"]
        fish_default = default in fish
        group = [m for m in fish if _rows_key(m) == _rows_key(fish[0])] if not fish_default \
            else [m for m in fish if _rows_key(m) == _rows_key(default)]
        _pick_params(doc, op, group, required=not fish_default)
        for p in op["parameters"]:
            if p.get("in") == "query" and p.get("name") in ("length", "weight"):
                f = group[0].signature.features[0 if p["name"] == "length" else 1]
                p["schema"] = _value(f, group[0].signature)
                p["schema"]["type"] = "number"


def tailor(doc: dict[str, Any], predictor: Predictor | None) -> dict[str, Any]:
    """``doc`` (the file's spec, changed in place) made exact for ``predictor``'s models."""
    if predictor is None:
        return doc
    models = [predictor.model(info.name) for info in predictor.models()]
    _native_paths(doc, predictor, models)
    _protocol_paths(doc, models)
    return doc
