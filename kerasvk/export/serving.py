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
- ``real_inputs(model, specs, batch)``: a request made from a real batch (``check-export --run`` uses it).
- ``rest_predict(loaded, body)`` / ``grpc_predict(loaded, request)``: what the model server answers to a REST
  JSON body or a gRPC ``PredictRequest``, computed offline on a loaded export (tests check the README's
  requests with them).
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


def _fits(spec, x) -> bool:
    dims = spec.shape.as_list() if spec.shape.rank is not None else None
    if dims is None or x.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, x.shape)):
        return False
    kind = np.dtype(spec.dtype.as_numpy_dtype).kind
    return kind == x.dtype.kind or (kind in "iu" and x.dtype.kind in "iu")


def real_inputs(model, specs, inputs, seed=0):
    """A request for a signature with input ``specs`` made from a real batch ``inputs`` as the Keras model
    takes it (float images in [0, 1], token ids, ``[images, labels]``, ...): the batch itself where it fits,
    else what the signature wants of it (uint8 pixels, PNG bytes, labels, latent vectors of the same batch
    size). ``None`` when the signature takes no batch input (a sampler: its warm-up request checks it).
    """
    import tensorflow as tf

    xs = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    n = len(xs[0])
    images = next((x for x in xs if x.ndim == 4 and x.dtype.kind == "f"), None)
    labels = next((x for x in xs[1:] if x.ndim == 1 and x.dtype.kind in "iu"), None)
    batch = [s for s in specs if s.shape.rank]
    if not batch:
        return None
    out = {}
    if len(batch) == len(xs) and all(_fits(s, x) for s, x in zip(batch, xs)):
        out.update({s.name: x.astype(s.dtype.as_numpy_dtype) for s, x in zip(batch, xs)})
    else:
        rng = np.random.default_rng(seed)
        pixels = None if images is None else np.clip(np.round(images * 255.0), 0, 255).astype("uint8")
        for s in batch:
            rank = s.shape.rank
            if s.dtype == tf.string and s.name == "image_bytes" and pixels is not None and pixels.shape[-1] in (1, 3):
                out[s.name] = np.array([tf.io.encode_png(p).numpy() for p in pixels], dtype=object)
            elif s.dtype == tf.uint8 and rank == 4 and pixels is not None and _fits(s, pixels):
                out[s.name] = pixels
            elif s.dtype.is_floating and rank == 4 and images is not None and _fits(s, images):
                out[s.name] = images.astype(s.dtype.as_numpy_dtype)
            elif s.dtype.is_integer and rank == 1 and s.name in ("labels", "class_id"):
                out[s.name] = (labels if labels is not None else np.zeros(n)).astype(s.dtype.as_numpy_dtype)
            elif s.dtype.is_floating and rank == 2 and s.shape[1] is not None:  # latent vectors (z, noise)
                out[s.name] = rng.standard_normal((n, int(s.shape[1]))).astype(s.dtype.as_numpy_dtype)
            else:
                return None
    size = len(next(iter(out.values())))
    for s in specs:
        if not s.shape.rank:
            value = size if s.name in _COUNTS else _DEFAULTS.get(s.name, 0)
            out[s.name] = np.array(value, s.dtype.as_numpy_dtype)
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


def _signature(loaded, name):
    if name not in loaded.signatures:
        raise ValueError(f"Unknown signature {name!r}. Allowed: {', '.join(sorted(loaded.signatures))}.")
    return loaded.signatures[name]


def _call(fn, signature, inputs):
    """Run a loaded signature on ``{input: array}``, each cast to the input's dtype as Serving does."""
    import tensorflow as tf

    specs = fn.structured_input_signature[1]
    if set(inputs) != set(specs):
        raise ValueError(f"Signature {signature!r} takes inputs {sorted(specs)}. Received: {sorted(inputs)}")
    return fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})


def _jsonable(name, value):
    """A tensor as TF Serving writes it into JSON: lists, strings as UTF-8 (``{"b64"}`` for ``*_bytes``)."""
    import base64

    def one(v):
        if isinstance(v, bytes):
            if name.endswith("_bytes"):
                return {"b64": base64.b64encode(v).decode()}
            return v.decode("utf-8", errors="replace")
        return v

    def walk(v):
        return [walk(u) for u in v] if isinstance(v, list) else one(v)

    return walk(np.asarray(value).tolist())


def rest_predict(loaded, body) -> dict:
    """The JSON response TF Serving's REST ``:predict`` gives for ``body`` on a loaded export, offline.

    Row requests (``instances``) answer ``{"predictions": [...]}`` (one entry per example: the value for a
    one-output signature, else a dict of outputs); columnar ones (``inputs``) ``{"outputs": ...}``. Inputs
    are cast to the signature's dtypes (JSON numbers → int32, uint8, ...) and ``{"b64": ...}`` decoded, as
    the model server does, so README requests and client bodies can be tested without a server.
    """
    import json

    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    name = body.get("signature_name", "serving_default") if isinstance(body, dict) else "serving_default"
    fn = _signature(loaded, name)
    signature, inputs = rest_inputs(body, list(fn.structured_input_signature[1]))
    out = {k: v.numpy() for k, v in _call(fn, signature, inputs).items()}
    if "instances" in body:
        if len(out) == 1:
            return {"predictions": _jsonable(*next(iter(out.items())))}
        rows = len(next(iter(out.values())))
        return {"predictions": [{k: _jsonable(k, v[i]) for k, v in out.items()} for i in range(rows)]}
    if len(out) == 1:
        return {"outputs": _jsonable(*next(iter(out.items())))}
    return {"outputs": {k: _jsonable(k, v) for k, v in out.items()}}


def grpc_predict(loaded, request):
    """A ``PredictResponse`` for a ``tensorflow_serving.apis.predict_pb2.PredictRequest`` on a loaded export:
    what the model server's gRPC ``Predict`` answers (outputs as ``TensorProto``s), offline."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    signature = request.model_spec.signature_name or "serving_default"
    fn = _signature(loaded, signature)
    out = _call(fn, signature, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    response.model_spec.signature_name = signature
    for k, v in out.items():
        response.outputs[k].CopyFrom(tf.make_tensor_proto(v.numpy()))
    return response
