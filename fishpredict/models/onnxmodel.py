"""An ONNX graph behind scikit-learn's ``predict``/``predict_proba`` face.

Graphs converted from scikit-learn (skl2onnx) take one float tensor of shape
``[n, d]`` (or one ``[n, 1]`` tensor per feature) and give a label output and,
for classifiers, a probabilities output (a tensor, or a sequence of maps when
the converter's ZipMap is on). The signature comes from the graph: inputs give
the features, the outputs give the task. The class labels come from the graph:
the classifier (or ZipMap) node's ``classlabels_*`` attribute, read with the
``onnx`` package (``pip install 'fishpredict[onnx]'`` brings it with onnxruntime).
With onnxruntime alone, a graph with ZipMap (skl2onnx's default) tells its labels
through the keys of its probability maps; one without ZipMap then needs the
``onnx`` package, and says so (its labels cannot be told from its outputs).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fishpredict.errors import ModelLoadError

#: onnxruntime's type names -> numpy dtypes of the inputs we can feed
_INPUT_DTYPES: Final = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.object_,
}


def _class_labels(blob: bytes) -> list[Any] | None:
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load_from_string(blob)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_int64s" and attr.ints:
                return [int(v) for v in attr.ints]
            if attr.name == "classlabels_strings" and attr.strings:
                return [v.decode() for v in attr.strings]
    return None


class OnnxModel:
    """A loaded ONNX graph with ``predict`` (and ``predict_proba`` for classifiers)."""

    def __init__(self, session: Any, source: str, classes: list[Any] | None) -> None:
        self.session = session
        self.source = source
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        self._inputs = [(i.name, _INPUT_DTYPES.get(i.type)) for i in inputs]
        for (name, dtype), i in zip(self._inputs, inputs, strict=True):
            if dtype is None:
                raise ModelLoadError(f"{source}: input {name!r} has unsupported type {i.type}")
        if len(inputs) == 1:
            width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
            if not isinstance(width, int):
                raise ModelLoadError(
                    f"{source}: input {inputs[0].name!r} must have shape [n, d] with a fixed d, "
                    f"got {inputs[0].shape}"
                )
            self.n_features_in_ = width
        else:
            self.n_features_in_ = len(inputs)
            self.feature_names_in_ = np.array([i.name for i in inputs], dtype=object)
        self._label = outputs[0].name
        self._proba = next(
            (o.name for o in outputs[1:] if "prob" in o.name.lower() or "seq(map" in o.type),
            None,
        )
        self._zipmap = self._proba is not None and any(
            o.name == self._proba and o.type.startswith("seq(") for o in outputs
        )
        self._estimator_type = "classifier" if self._proba is not None else "regressor"
        if self._proba is not None:
            labels = classes
            if labels is None and self._zipmap:
                labels = self._map_keys()
            if labels is None:
                raise ModelLoadError(
                    f"{source}: cannot tell the classes of this classifier from onnxruntime "
                    "alone; install the onnx package (pip install 'fishpredict[onnx]')"
                )
            self.classes_ = np.array(labels)

    def _map_keys(self) -> list[Any] | None:
        """The class labels a ZipMap output carries as its maps' keys (one row of zeros)."""
        try:
            zeros = np.zeros((1, self.n_features_in_))
            maps = self.session.run([self._proba], self._feed(zeros))[0]
            keys = list(maps[0].keys())
        except Exception:
            return None
        return [k.item() if isinstance(k, np.generic) else k for k in keys] or None

    @classmethod
    def from_bytes(cls, blob: bytes, source: str) -> OnnxModel:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError(
                f"{source}: reading .onnx files needs onnxruntime "
                "(pip install 'fishpredict[onnx]')"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                blob, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(f"{source} is not a readable ONNX model ({exc})") from None
        return cls(session, source, _class_labels(blob))

    def _feed(self, X: Any) -> dict[str, Any]:
        arr = np.asarray(X)
        if len(self._inputs) == 1:
            name, dtype = self._inputs[0]
            return {name: arr.astype(dtype, copy=False)}
        return {
            name: arr[:, j : j + 1].astype(dtype, copy=False)
            for j, (name, dtype) in enumerate(self._inputs)
        }

    def predict(self, X: Any) -> npt.NDArray[Any]:
        out = self.session.run([self._label], self._feed(X))[0]
        out = np.asarray(out)
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        if self._proba is None:
            raise AttributeError("this ONNX model gives no probabilities")
        out = self.session.run([self._proba], self._feed(X))[0]
        if self._zipmap:
            keys = list(self.classes_)
            return np.array([[row[k] for k in keys] for row in out], dtype=np.float64)
        return np.asarray(out, dtype=np.float64)

    def __repr__(self) -> str:
        return f"OnnxModel({self.source!r})"
