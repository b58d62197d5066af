"""What TF Serving needs beside the SavedModel: warm-up records, ``models.config``, example requests.

- ``example_inputs(model, specs)``: a small valid request for a signature, from its input specs (a zero
  image batch of one, ``n``/``num_samples``/``num_steps`` = 2, ``seed`` 0, ``temperature`` 1, a prompt
  from the model's vocabulary, a PNG for ``image_bytes``, ...).
- ``write_warmup(folder, name, examples)``: ``assets.extra/tf_serving_warmup_requests``, a TFRecord of
  ``PredictionLog``s built with ``tensorflow-serving-api``'s protos, one per signature, so Serving runs
  every signature once when it loads the version (no first-request latency spike).
- ``read_warmup(folder)``: the requests back as ``{signature: {input: ndarray}}`` (``check-export`` runs them).
- ``write_models_config(base)``: the ``model_config_list`` text proto listing every model under ``base``
  for ``tensorflow_model_server --model_config_file=BASE/models.config``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasvk import io

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_COUNTS = {"n": 2, "num_samples": 2, "num_steps": 2, "max_new_tokens": 2}
_DEFAULTS = {"seed": 0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "class_id": 0}


def _png(height, width, channels):
    import tensorflow as tf

    return tf.io.encode_png(tf.zeros((height, width, channels), tf.uint8)).numpy()


def example_inputs(model, specs) -> dict:
    """``{input name: ndarray}`` of a small valid request for a signature with input ``specs``."""
    import tensorflow as tf

    out = {}
    # a signature that takes a count (sample(n, seed, labels)) gets batch inputs of that many rows
    counts = [_COUNTS[s.name] for s in specs if s.name in _COUNTS and s.shape.rank == 0]
    batch = counts[0] if counts else 1
    for spec in specs:
        name = spec.name
        dims = spec.shape.as_list() if spec.shape.rank is not None else []
        shape = [(batch if i == 0 else 1) if d is None else d for i, d in enumerate(dims)]
        if spec.dtype == tf.string:
            if name == "image_bytes":
                h, w, c = model.inputs[0].shape[1:]
                out[name] = np.array([_png(h, w, c)], dtype=object)
            elif name == "prompt":
                prompt = model.default_prompt() if hasattr(model, "default_prompt") else ""
                out[name] = np.array(prompt.encode(), dtype=object)
            else:
                out[name] = np.full(shape, b"", dtype=object)
        elif not shape and name in _COUNTS:
            out[name] = np.array(_COUNTS[name], spec.dtype.as_numpy_dtype)
        elif not shape and name in _DEFAULTS:
            out[name] = np.array(_DEFAULTS[name], spec.dtype.as_numpy_dtype)
        else:
            out[name] = np.zeros(shape, spec.dtype.as_numpy_dtype)
    return out


def signature_examples(model, endpoints) -> dict:
    """``{signature: example inputs}`` for ``{signature: input specs}``."""
    return {sig: example_inputs(model, specs) for sig, specs in endpoints.items()}


def write_warmup(folder, model_name, examples) -> Path:
    """Write ``folder/assets.extra/tf_serving_warmup_requests`` with one PredictRequest per signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(folder) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in examples.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup(folder) -> dict:
    """The warm-up requests of an export: ``{signature: {input: ndarray}}`` (empty if it has none)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(folder) / WARMUP_FILE
    if not path.is_file():
        return {}
    out = {}
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        out[request.model_spec.signature_name] = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    return out


def write_models_config(base) -> Path:
    """``BASE/models.config``: a ``model_config_list`` entry for every model folder with a numbered version."""
    base = Path(base)
    names = sorted(
        p.name for p in base.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(v.is_dir() and v.name.isdigit() for v in p.iterdir())
    ) if base.is_dir() else []
    entries = "".join(
        f"  config {{\n    name: \"{n}\"\n    base_path: \"{(base / n).resolve()}\"\n    model_platform: \"tensorflow\"\n  }}\n"
        for n in names
    )
    return io.write_text(base / "models.config", f"model_config_list {{\n{entries}}}\n")


def rest_inputs(body, signature_inputs=None) -> tuple[str, dict]:
    """``(signature name, {input: ndarray})`` of a TF Serving REST ``:predict`` body, decoded as Serving does.

    ``body`` is the JSON text or dict a client sends: the row format ``{"instances": [...]}`` (one entry per
    example; a dict per example for named inputs) or the columnar ``{"inputs": ...}``, with an optional
    ``"signature_name"`` (default ``serving_default``); ``{"b64": "..."}`` values are base64-decoded to bytes.
    ``signature_inputs`` (the input names of the signature) names a single unnamed input. Lets a client's
    request be checked offline against an export (``tests/test_serving.py`` does so).
    """
    import base64
    import json

    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise ValueError('A REST predict body is a JSON object with exactly one of "instances" (rows) or "inputs" (columns).')

    def decode(v):
        if isinstance(v, dict) and set(v) == {"b64"}:
            return base64.b64decode(v["b64"])
        if isinstance(v, list):
            return [decode(u) for u in v]
        return v

    def array(values):
        values = decode(values)
        flat = values
        while isinstance(flat, list) and flat:
            flat = flat[0]
        return np.array(values, dtype=object) if isinstance(flat, bytes) else np.array(values)

    signature = body.get("signature_name", "serving_default")
    names = list(signature_inputs or [])
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError('"instances" must be a non-empty list (one entry per example).')
        if isinstance(rows[0], dict) and not (set(rows[0]) == {"b64"}):
            return signature, {k: array([r[k] for r in rows]) for k in rows[0]}
        if len(names) > 1:
            raise ValueError(f"Signature {signature!r} has several inputs {names}: send one dict per instance.")
        return signature, {(names[0] if names else "inputs"): array(rows)}
    cols = body["inputs"]
    if isinstance(cols, dict):
        return signature, {k: array(v) for k, v in cols.items()}
    return signature, {(names[0] if names else "inputs"): array(cols)}
