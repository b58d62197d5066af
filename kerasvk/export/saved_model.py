"""Export Keras models as SavedModels for TF Serving.

Layout: ``BASE/NAME/VERSION/`` with VERSION the next free integer (TF Serving picks the highest).
A version is written into a hidden temporary folder beside it and renamed into place, so a
half-written version never appears where TF Serving (or ``check_export``) would read it.

Signatures:

- classifiers: ``serving_default(images)`` (float32 in [0, 1]), ``serving_uint8(images)`` (uint8 0..255,
  scaled in the graph) and ``serving_bytes(image_bytes)`` (encoded JPEG/PNG, decoded and resized in the
  graph) → ``{probabilities, class_id, score, top_k_scores, top_k_ids[, class_name,
  top_k_classes]}``;
- other models: ``serving_default`` is the forward pass, its outputs named by the model's
  ``serving_output_names`` (e.g. the VAE's ``reconstruction, z_mean, z_log_var``);
- any model may define ``serving_endpoints(self) -> {name: (fn, input_signature)}`` to add task
  signatures (a generative sampler, a ``generate`` loop, ...). If it defines ``serving_default``
  itself, that replaces the plain forward pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kerasvk.io import atomic_dir


def next_version(base, name) -> int:
    """The next free integer version under ``base/name`` (1 when there is none)."""
    root = Path(base) / name
    versions = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.is_dir() else []
    return max(versions, default=0) + 1


def _input_signature(model):
    import tensorflow as tf

    specs = []
    for t in model.inputs:
        dtype = tf.as_dtype(t.dtype)
        specs.append(tf.TensorSpec(shape=(None, *t.shape[1:]), dtype=dtype, name=t.name.split(":")[0]))
    return specs


def _is_classifier(model) -> bool:
    return len(model.inputs) == 1 and len(model.outputs) == 1 and len(model.outputs[0].shape) == 2


TOP_K = 5  # top_k_classes / top_k_scores width of a classifier's signatures (at most its class count)


def classifier_outputs(probs, labels=None):
    """The named outputs of a classifier signature from a ``(batch, classes)`` probability tensor."""
    import tensorflow as tf

    k = min(TOP_K, int(probs.shape[-1]))
    class_id = tf.argmax(probs, axis=-1, output_type=tf.int32)
    top_scores, top_ids = tf.math.top_k(probs, k=k)
    result = {
        "probabilities": probs,
        "class_id": class_id,
        "score": tf.reduce_max(probs, axis=-1),
        "top_k_scores": top_scores,
        "top_k_ids": top_ids,
    }
    if labels is not None:
        result["class_name"] = tf.gather(labels, class_id)
        result["top_k_classes"] = tf.gather(labels, top_ids)
    return result


def decode_images(encoded, height, width, channels):
    """A batch of encoded JPEG/PNG/BMP/GIF strings → float32 ``(batch, height, width, channels)`` in [0, 1].

    The conversion ``folder:PATH`` training data goes through (decode, bilinear resize, rounded to
    uint8, / 255), in the graph, so a REST client can send base64 image bytes.
    """
    import tensorflow as tf

    def one(data):
        img = tf.io.decode_image(data, channels=channels, expand_animations=False)
        img = tf.image.resize(tf.cast(img, tf.float32), (height, width), method="bilinear", antialias=False)
        return tf.clip_by_value(tf.round(img), 0.0, 255.0) / 255.0

    return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))


def add_serving_endpoints(archive, model, *, class_names=None, from_logits=False):
    """Register the model's endpoints on a ``keras.export.ExportArchive``; return ``{name: input specs}``.

    A classifier gets ``serving_default(images)`` (float images in [0, 1]) and, when its input size is
    fixed, ``serving_uint8(images)`` (uint8 pixels) and ``serving_bytes(image_bytes)`` (encoded images,
    decoded and resized in the graph); all return
    ``probabilities, class_id, score, top_k_scores, top_k_ids`` and, with ``class_names``,
    ``class_name, top_k_classes``.
    """
    import tensorflow as tf

    extra = dict(model.serving_endpoints()) if hasattr(model, "serving_endpoints") else {}
    names = {}
    if "serving_default" not in extra:
        signature = _input_signature(model)
        if _is_classifier(model):
            labels = tf.constant([str(c) for c in class_names]) if class_names is not None else None

            def predict(images):
                out = model(images, training=False)
                return classifier_outputs(tf.nn.softmax(out, axis=-1) if from_logits else out, labels)

            def serve(images):
                return predict(images)

            image_spec = signature[0]
            signature = [tf.TensorSpec(image_spec.shape, image_spec.dtype, name="images")]
            dims = tuple(image_spec.shape[1:])
            if len(dims) == 3 and None not in dims and dims[2] in (1, 3):  # an image classifier of fixed size
                h, w, c = dims

                def serve_bytes(image_bytes):
                    return predict(tf.cast(decode_images(image_bytes, h, w, c), image_spec.dtype))

                bytes_spec = [tf.TensorSpec((None,), tf.string, name="image_bytes")]
                archive.add_endpoint("serving_bytes", serve_bytes, input_signature=bytes_spec)
                names["serving_bytes"] = bytes_spec

                def serve_uint8(images):  # the pixels as they come from a decoder or camera, / 255 in the graph
                    return predict(tf.cast(images, image_spec.dtype) / 255.0)

                uint8_spec = [tf.TensorSpec((None, h, w, c), tf.uint8, name="images")]
                archive.add_endpoint("serving_uint8", serve_uint8, input_signature=uint8_spec)
                names["serving_uint8"] = uint8_spec

        else:

            output_names = tuple(getattr(model, "serving_output_names", ()))

            def serve(*inputs):
                out = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
                if isinstance(out, dict):
                    return out
                outs = list(out) if isinstance(out, (list, tuple)) else [out]
                if len(output_names) == len(outs):  # the model's documented names (no output_N)
                    return dict(zip(output_names, outs))
                return {f"output_{i}": o for i, o in enumerate(outs)} if len(outs) > 1 else {"output": outs[0]}

        archive.add_endpoint("serving_default", serve, input_signature=signature)
        names["serving_default"] = signature
    for name, (fn, signature) in extra.items():
        archive.add_endpoint(name, fn, input_signature=signature)
        names[name] = signature
    return names


def export_model(
    model,
    base="saved_models",
    name=None,
    version=None,
    *,
    class_names=None,
    from_logits=False,
    verbose=False,
) -> Path:
    """Write ``model`` to ``base/name/version`` as a SavedModel and return that path.

    ``version`` defaults to the next free integer; an existing version is never overwritten.
    """
    import keras

    name = name or model.name
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", name) or ".." in name:
        raise ValueError(
            "Export name may contain only letters, digits, '_', '-' and '.' (not first, no '..'), so it stays one "
            f"folder under the base. Received: name={name!r}"
        )
    if Path(base).exists() and not Path(base).is_dir():
        raise ValueError(f"Export base {base} is an existing file; give a folder (TF Serving's base path).")
    if (Path(base) / name).exists() and not (Path(base) / name).is_dir():
        raise ValueError(f"{Path(base) / name} is an existing file; the model's versions need a folder there.")
    root = Path(base) / name
    root.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(base, name)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    final = root / str(version)
    if final.exists():
        raise ValueError(f"{final} already exists; versions are never overwritten. Use version={next_version(base, name)}.")
    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoints = add_serving_endpoints(archive, model, class_names=class_names, from_logits=from_logits)
    from kerasvk.export.serving import signature_examples, write_models_config, write_warmup

    # Written into a hidden temporary folder with its warm-up requests, made world-readable (0755/0644
    # under the usual umask, so a TF Serving process running as another user can read it) and renamed
    # into place; never overwritten. Then BASE/models.config lists every model under the base.
    with atomic_dir(final, overwrite=False) as tmp:
        archive.write_out(str(tmp), verbose=verbose)
        write_warmup(tmp, name, signature_examples(model, endpoints))
    write_models_config(base)
    return final


def load_exported(path):
    """``tf.saved_model.load`` with a clear error for a missing or corrupt export."""
    import tensorflow as tf

    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {path} (expected {path / 'saved_model.pb'}).")
    try:
        return tf.saved_model.load(str(path))
    except Exception as e:  # corrupt protobuf, missing variables, ...
        raise ValueError(f"Cannot load SavedModel {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def check_export(path, model=None, inputs=None, atol=1e-5) -> dict:
    """Load an export and run **every** signature on its warm-up request; with ``inputs`` also run
    ``serving_default`` on them and, with ``model``, compare its main output with the Keras model's.

    Returns ``{"signatures": [...], "warmup": {signature: {output: shape}}, "outputs": {name: shape},
    "max_abs_diff": float|None}``; a signature that fails raises ``ValueError`` naming it.
    """
    import tensorflow as tf

    from kerasvk.export.serving import read_warmup

    loaded = load_exported(path)
    report = {"signatures": sorted(loaded.signatures.keys()), "warmup": {}, "outputs": {}, "max_abs_diff": None}
    for signature, request in read_warmup(path).items():
        try:
            out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in request.items()})
        except Exception as e:
            raise ValueError(f"Export {path}: signature {signature!r} fails on its warm-up request: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        report["warmup"][signature] = {k: tuple(v.shape) for k, v in out.items()}
    if inputs is None:
        return report
    fn = loaded.signatures["serving_default"]
    arg_names = sorted(fn.structured_input_signature[1].keys())
    xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    out = fn(**dict(zip(arg_names, xs)))
    report["outputs"] = {k: tuple(v.shape) for k, v in out.items()}
    if model is not None:
        ref = model(inputs if len(xs) > 1 else xs[0], training=False)
        ref = np.asarray(ref[0] if isinstance(ref, (list, tuple)) else ref)
        key = "probabilities" if "probabilities" in out else sorted(out)[0]
        if isinstance(getattr(model, "serving_output_names", None), tuple):
            key = model.serving_output_names[0]
        report["max_abs_diff"] = float(np.max(np.abs(out[key].numpy() - ref)))
        if report["max_abs_diff"] > atol:
            raise ValueError(
                f"Export {path} disagrees with the Keras model: max |diff| = {report['max_abs_diff']:.3g} > {atol}."
            )
    return report
