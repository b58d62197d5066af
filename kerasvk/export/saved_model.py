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

Beside the SavedModel a version holds ``assets.extra/tf_serving_warmup_requests`` (one request per
signature) and, for a classifier, ``assets.extra/class_names.json``; ``BASE/models.config`` lists every
model. ``check_export`` verifies a version against its Keras model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from kerasvk import io
from kerasvk.io import atomic_dir


def next_version(base, name) -> int:
    """The next free integer version under ``base/name`` (1 when there is none)."""
    root = Path(base) / name
    versions = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.is_dir() else []
    return max(versions, default=0) + 1


_AUTO_INPUT_NAME = re.compile(r"(keras_tensor|input_layer)(_\d+)?")  # names Keras makes up, not the user


def _input_names(model):
    """The signature names of the model's inputs: the ``keras.Input(name=...)`` each was given, else
    ``inputs`` (one input) or ``inputs_<i>`` (several), never Keras' made-up ``keras_tensor_12``."""
    names = []
    for i, t in enumerate(model.inputs):
        name = (t.name or "").split(":")[0]
        if not name or _AUTO_INPUT_NAME.fullmatch(name):
            name = "inputs" if len(model.inputs) == 1 else f"inputs_{i}"
        names.append(name)
    return names


def _input_signature(model):
    """One ``TensorSpec`` per model input (batch dimension free), validated for serving.

    A serving signature needs a built model with inputs of known rank; an input of rank 3 or more (images,
    feature maps) needs its last (channel) dimension known. Other dimensions may be free (``None``): the
    image size of a fully convolutional model, the length of a token or audio sequence.
    """
    import tensorflow as tf

    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"Cannot export {getattr(model, 'name', model)!r}: it has no known inputs. Export a functional model "
            "(built from keras.Input) or a model that defines serving_endpoints(); a subclassed model needs "
            "either. Received: a model without model.inputs."
        )
    specs = []
    for t, name in zip(inputs, _input_names(model)):
        shape = t.shape
        if shape is None or len(shape) < 1 or (len(shape) > 2 and shape[-1] is None):
            raise ValueError(
                f"Cannot export {model.name!r}: input {name!r} has shape {shape}. Allowed: a batch of fixed "
                "rank whose channel (last) dimension is known when it has 3 or more dimensions; other "
                "dimensions may be None (any image size or sequence length)."
            )
        specs.append(tf.TensorSpec(shape=(None, *shape[1:]), dtype=tf.as_dtype(t.dtype), name=name))
    return specs


def _output_names(model, outs):
    """Names for the outputs of the plain forward pass: the model's ``serving_output_names``, else its
    output layers' names (several outputs), else ``output`` (one)."""
    names = tuple(getattr(model, "serving_output_names", ()) or ())
    if len(names) == len(outs):
        return names
    if len(outs) == 1:
        return ("output",)
    layer_names = tuple(getattr(model, "output_names", None) or ())
    if len(layer_names) == len(outs) and len(set(layer_names)) == len(layer_names):
        return layer_names
    return tuple(f"output_{i}" for i in range(len(outs)))


def _is_classifier(model) -> bool:
    try:
        return len(model.inputs) == 1 and len(model.outputs) == 1 and len(model.outputs[0].shape) == 2
    except (AttributeError, ValueError):
        return False


TOP_K = 5  # top_k_classes / top_k_scores width of a classifier's signatures (at most its class count)


def classifier_labels(class_names, num_classes):
    """The class names a classifier's signatures return: ``class_names`` (one per class), else the class
    ids as strings (``"0"``, ``"1"``, ...), so ``class_name``/``top_k_classes`` are always there."""
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(c) for c in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names must have one name per class: the model has {num_classes} classes. "
            f"Received: {len(names)} names {names[:10]}{' ...' if len(names) > 10 else ''}"
        )
    return names


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
    uint8, / 255), in the graph, so a REST client can send base64 image bytes. An undecodable string
    fails the request with ``InvalidArgumentError`` ("Unknown image file format ...").
    """
    import tensorflow as tf

    def one(data):
        img = tf.io.decode_image(data, channels=channels, expand_animations=False)
        img = tf.image.resize(tf.cast(img, tf.float32), (height, width), method="bilinear", antialias=False)
        return tf.clip_by_value(tf.round(img), 0.0, 255.0) / 255.0

    return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))


def _classifier_functions(model, specs, class_names, from_logits):
    import tensorflow as tf

    image_spec = specs[0]
    if model.outputs[0].shape[-1] is None:
        raise ValueError(f"Cannot export {model.name!r} as a classifier: its output {tuple(model.outputs[0].shape)} has "
                         "no known class count. Allowed: a (batch, classes) output with classes fixed.")
    num_classes = int(model.outputs[0].shape[-1])
    labels = tf.constant(classifier_labels(class_names, num_classes))
    float_spec = tf.TensorSpec(image_spec.shape, image_spec.dtype, name="images")

    # The model is traced once, in this function; every signature calls it, so an export of three
    # classifier signatures holds (and traces) the network once, not three times.
    @tf.function(input_signature=[float_spec], autograph=False)
    def predict(images):
        out = model(images, training=False)
        return classifier_outputs(tf.nn.softmax(out, axis=-1) if from_logits else out, labels)

    def serve(images):
        return predict(images)

    functions = {"serving_default": (serve, [float_spec])}
    dims = tuple(image_spec.shape[1:])
    if len(dims) == 3 and None not in dims and dims[2] in (1, 3):  # an image classifier of fixed size
        h, w, c = dims

        def serve_bytes(image_bytes):
            return predict(tf.cast(decode_images(image_bytes, h, w, c), image_spec.dtype))

        def serve_uint8(images):  # the pixels as they come from a decoder or camera, / 255 in the graph
            return predict(tf.cast(images, image_spec.dtype) / 255.0)

        functions["serving_bytes"] = (serve_bytes, [tf.TensorSpec((None,), tf.string, name="image_bytes")])
        functions["serving_uint8"] = (serve_uint8, [tf.TensorSpec((None, h, w, c), tf.uint8, name="images")])
    return functions


def serving_functions(model, *, class_names=None, from_logits=False) -> dict:
    """``{signature name: (fn, input specs)}``: every signature an export of ``model`` gets.

    A classifier gets ``serving_default(images)`` (float images in [0, 1]) and, when its input size is
    fixed, ``serving_uint8(images)`` (uint8 pixels) and ``serving_bytes(image_bytes)`` (encoded images,
    decoded and resized in the graph); all return ``probabilities, class_id, score, class_name,
    top_k_scores, top_k_ids, top_k_classes`` (class names default to the ids as strings). Other models
    get the forward pass as ``serving_default`` (outputs named by ``serving_output_names``) plus their own
    ``serving_endpoints()``. ``check_export`` runs these same functions on the Keras model to compare.
    """
    import keras
    import tensorflow as tf

    extra = dict(model.serving_endpoints()) if hasattr(model, "serving_endpoints") else {}
    functions = {}
    if "serving_default" not in extra:
        specs = _input_signature(model)
        if _is_classifier(model):
            if len(specs[0].shape) == 4:
                specs = [tf.TensorSpec(specs[0].shape, specs[0].dtype, name="images")]
            functions.update(_classifier_functions(model, specs, class_names, from_logits))
        else:
            structure = model.input if isinstance(getattr(model, "input", None), dict) else None

            def serve(*inputs):
                x = list(inputs) if len(inputs) > 1 else inputs[0]
                if structure is not None:  # a functional model built on a dict of inputs gets that dict back
                    x = keras.tree.pack_sequence_as(structure, list(inputs))
                out = model(x, training=False)
                if isinstance(out, dict):
                    return out
                outs = list(out) if isinstance(out, (list, tuple)) else [out]
                return dict(zip(_output_names(model, outs), outs))

            functions["serving_default"] = (serve, specs)
    functions.update(extra)
    return functions


CLASS_NAMES_FILE = Path("assets.extra") / "class_names.json"  # a classifier export's class names, in id order


def served_class_names(model, class_names=None):
    """The class names a classifier's export returns (``class_names``, else the ids as strings); ``None``
    for a model that is not served as a classifier."""
    if hasattr(model, "serving_endpoints") and "serving_default" in dict(model.serving_endpoints()):
        return None
    if not _is_classifier(model) or model.outputs[0].shape[-1] is None:
        return None
    return classifier_labels(class_names, int(model.outputs[0].shape[-1]))


def add_serving_endpoints(archive, model, *, class_names=None, from_logits=False):
    """Register ``serving_functions(model)`` on a ``keras.export.ExportArchive``; return ``{name: input specs}``."""
    names = {}
    for name, (fn, signature) in serving_functions(model, class_names=class_names, from_logits=from_logits).items():
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

    ``version`` defaults to the next free integer (if another export takes that number meanwhile, the
    next one); an existing version is never overwritten. Nothing is created when the name, version or
    model is refused.
    """
    import keras
    import tensorflow as tf

    name = name or model.name
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*", name) or ".." in name:
        raise ValueError(
            "Export name may contain only letters, digits, '_', '-' and '.' (not first, no '..'), so it stays one "
            f"folder under the base. Received: name={name!r}"
        )
    if Path(base).exists() and not Path(base).is_dir():
        raise ValueError(f"Export base {base} is an existing file; give a folder (TF Serving's base path).")
    root = Path(base) / name
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is an existing file; the model's versions need a folder there.")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be a positive integer. Received: version={version!r}")
    if version is not None and (root / str(version)).exists():
        raise ValueError(f"{root / str(version)} already exists; versions are never overwritten. "
                         f"Use version={next_version(base, name)} (or none: the next free one).")
    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoints = add_serving_endpoints(archive, model, class_names=class_names, from_logits=from_logits)
    from kerasvk.export.serving import signature_examples, write_models_config, write_warmup

    examples = signature_examples(model, endpoints)
    # Serving runs the signatures forward only: no custom-gradient functions are traced and saved (a
    # fifth of the export time of a MobileNet/EfficientNet). The saver ops stay: TF Serving restores the
    # variables through them.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    labels = served_class_names(model, class_names)
    root.mkdir(parents=True, exist_ok=True)
    # Written into a hidden temporary folder with its warm-up requests, made world-readable (0755/0644
    # under the usual umask, so a TF Serving process running as another user can read it) and renamed
    # into place; never overwritten. Then BASE/models.config lists every model under the base.
    for _ in range(100):
        final = root / str(version if version is not None else next_version(base, name))
        try:
            with atomic_dir(final, overwrite=False) as tmp:
                archive.write_out(str(tmp), options=options, verbose=verbose)
                write_warmup(tmp, name, examples)
                if labels is not None:  # for clients and check-export (TF Serving ignores assets.extra)
                    io.write_json(labels, tmp / CLASS_NAMES_FILE)
        except FileExistsError:
            if version is not None:
                raise ValueError(f"{final} already exists; versions are never overwritten.") from None
            continue  # a concurrent export took this number: write the next one
        break
    else:  # pragma: no cover - 100 concurrent exporters
        raise RuntimeError(f"Could not claim a free version under {root}.")
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


def resolve_version(path, version=None) -> Path:
    """The version folder to check: ``path`` itself when it holds ``saved_model.pb``, else ``path/version``
    of a model folder (default: its highest version, the one TF Serving serves)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        if version is not None and path.name != str(version):
            raise ValueError(f"{path} is a version folder ({path.name}); version={version} names another. Give the "
                             f"model folder {path.parent} with a version, or the version folder alone.")
        return path
    versions = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()) \
        if path.is_dir() else []
    if version is not None and path.is_dir() and versions:
        if version not in versions:
            raise FileNotFoundError(f"No SavedModel version {version} under {path}. Available versions: "
                                    f"{', '.join(map(str, versions))}.")
        return path / str(version)
    if versions:
        return path / str(versions[-1])
    raise FileNotFoundError(f"No SavedModel at {path} (expected {path / 'saved_model.pb'}, or numbered version "
                            "folders NAME/1/saved_model.pb under a model folder).")


def _spec_info(spec):
    return {"dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape.as_list()]
            if spec.shape.rank is not None else None}


def describe_signatures(loaded) -> dict:
    """``{signature: {"inputs": {name: {dtype, shape}}, "outputs": {...}}}`` of a loaded SavedModel
    (what ``saved_model_cli show --all`` lists; ``-1`` is a free dimension)."""
    out = {}
    for sig in sorted(loaded.signatures):
        fn = loaded.signatures[sig]
        out[sig] = {
            "inputs": {k: _spec_info(v) for k, v in sorted(fn.structured_input_signature[1].items())},
            "outputs": {k: _spec_info(v) for k, v in sorted(fn.structured_outputs.items())},
        }
    return out


def format_signatures(described) -> list[str]:
    """``describe_signatures`` as text lines, in ``saved_model_cli show``'s layout."""
    lines = []
    for sig, io_ in described.items():
        lines.append(f"signature_def['{sig}']:")
        for kind in ("inputs", "outputs"):
            for k, v in io_[kind].items():
                shape = "unknown_rank" if v["shape"] is None else "(" + ", ".join(map(str, v["shape"])) + ")"
                lines.append(f"  {kind}['{k}']: {v['dtype']} {shape}")
    return lines


def _compare(exported, reference, atol, rtol):
    """``(max |diff| over float outputs, [problems])`` of one signature's outputs against the Keras ones."""
    problems, worst = [], 0.0
    if set(exported) != set(reference):
        return worst, [f"outputs {sorted(exported)} but the Keras model gives {sorted(reference)}"]
    for key in sorted(reference):
        a, b = np.asarray(exported[key]), np.asarray(reference[key])
        if a.shape != b.shape:
            problems.append(f"{key}: shape {a.shape} vs Keras {b.shape}")
        elif a.dtype.kind == "f":
            diff = float(np.max(np.abs(a.astype("float64") - b))) if a.size else 0.0
            worst = max(worst, diff)
            if not np.allclose(a, b, atol=atol, rtol=rtol):
                problems.append(f"{key}: max |diff| {diff:.3g} > atol {atol:g} + rtol {rtol:g}·|Keras|")
        elif not np.array_equal(a, b):
            problems.append(f"{key}: {int(np.sum(a != b))} of {a.size} values differ")
    return worst, problems


def check_export(path, model=None, inputs=None, atol=1e-5, *, version=None, class_names=None, from_logits=False,
                 rtol=1e-4, raise_on_mismatch=True) -> dict:
    """Verify an export the way TF Serving will use it.

    ``path`` is a version folder, or a model folder (``version`` or else its highest version). Lists every
    signature (inputs/outputs with dtypes and shapes), replays the warm-up requests through their
    signatures and, with ``model`` (the Keras model it was exported from), runs every signature on the
    export and its function on the Keras model (on ``inputs``, a real batch, where the signature takes it,
    else on its warm-up request) and compares each output: floats within ``atol + rtol·|Keras|``, integers
    and strings exactly. With ``inputs`` and a plain forward ``serving_default``, ``max_abs_diff`` is its
    main output against ``model(inputs)`` (computed apart); otherwise the largest float difference over the
    signatures compared. ``class_names``/``from_logits``: what the export was made with (a classifier's;
    class names default to the export's ``assets.extra/class_names.json``).

    Returns ``{"path", "signatures": {name: {inputs, outputs}}, "warmup": {signature: {output: shape}},
    "keras": {signature: max |diff|}, "outputs", "max_abs_diff", "errors": [...]}``. A failing signature or a
    mismatch raises ``ValueError`` naming it (``raise_on_mismatch=False``: listed in ``errors`` instead).
    """
    import tensorflow as tf

    from kerasvk.export.serving import example_inputs, read_warmup, real_inputs

    path = resolve_version(path, version)
    loaded = load_exported(path)
    report = {"path": str(path), "signatures": describe_signatures(loaded), "warmup": {}, "keras": {},
              "outputs": {}, "max_abs_diff": None, "errors": []}

    def run(signature, request):
        fn = loaded.signatures[signature]
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in request.items()}).items()}

    def fail(message):
        if raise_on_mismatch:
            raise ValueError(message)
        report["errors"].append(message)

    warmups = read_warmup(path)
    for signature, request in warmups.items():
        if signature not in loaded.signatures:
            fail(f"Export {path}: warm-up request for {signature!r}, which the export does not have "
                 f"(signatures: {', '.join(sorted(loaded.signatures))}).")
            continue
        try:
            out = run(signature, request)
        except Exception as e:
            fail(f"Export {path}: signature {signature!r} fails on its warm-up request: "
                 f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        report["warmup"][signature] = {k: tuple(v.shape) for k, v in out.items()}

    if model is not None and class_names is None and (path / CLASS_NAMES_FILE).is_file():
        class_names = io.read_json(path / CLASS_NAMES_FILE, "class names file")  # what the export was made with
    functions = {} if model is None else serving_functions(model, class_names=class_names, from_logits=from_logits)
    report["no_warmup"] = sorted(set(loaded.signatures) - set(warmups))
    if model is not None and set(functions) != set(loaded.signatures):
        fail(f"Export {path} has signatures {sorted(loaded.signatures)} but the Keras model gives {sorted(functions)}.")
    for signature in sorted(set(functions) & set(loaded.signatures)):
        fn, specs = functions[signature]
        # on the real inputs where the signature takes them, else on its warm-up request (a sampler's
        # n/seed/temperature); the warm-up requests themselves all ran through the export above
        real = real_inputs(model, specs, inputs) if inputs is not None else None
        if real is not None:
            requests = [real]
        elif signature in warmups and signature in report["warmup"]:
            requests = [warmups[signature]]
        else:
            requests = [example_inputs(model, specs)]
        worst = 0.0
        for request in requests:
            try:
                exported = run(signature, request)
            except Exception as e:
                fail(f"Export {path}: signature {signature!r} fails: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                break
            args = [tf.constant(request[s.name], s.dtype) for s in specs]  # positional, as the export traced it
            reference = {k: np.asarray(v) for k, v in fn(*args).items()}
            diff, problems = _compare(exported, reference, atol, rtol)
            worst = max(worst, diff)
            for problem in problems:
                fail(f"Export {path} disagrees with the Keras model in {signature!r}: {problem}.")
        report["keras"][signature] = worst

    own_default = model is not None and "serving_default" in (
        model.serving_endpoints() if hasattr(model, "serving_endpoints") else {})
    if inputs is not None and "serving_default" in loaded.signatures and not own_default:
        # the plain forward pass (or a classifier's probabilities) against model(inputs), computed apart
        xs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        fn = loaded.signatures["serving_default"]
        given = fn.structured_input_signature[1]
        names = [s.name for s in functions["serving_default"][1]] if model is not None else sorted(given)
        try:
            out = fn(**{n: tf.constant(x, given[n].dtype) for n, x in zip(names, xs)})
        except Exception as e:
            out = None
            fail(f"Export {path}: serving_default fails on the given inputs {[np.shape(x) for x in xs]}: "
                 f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        if out is not None:
            report["outputs"] = {k: tuple(v.shape) for k, v in out.items()}
        if out is not None and model is not None:
            ref = model(inputs if len(xs) > 1 else xs[0], training=False)
            ref = np.asarray(ref[0] if isinstance(ref, (list, tuple)) else ref)
            key = "probabilities" if "probabilities" in out else sorted(out)[0]
            if key == "probabilities" and from_logits:
                ref = np.asarray(tf.nn.softmax(ref, axis=-1))
            if isinstance(getattr(model, "serving_output_names", None), tuple):
                key = model.serving_output_names[0]
            report["max_abs_diff"] = float(np.max(np.abs(out[key].numpy() - ref)))
            if report["max_abs_diff"] > atol:
                fail(f"Export {path} disagrees with the Keras model: max |diff| = {report['max_abs_diff']:.3g} > {atol}.")
    elif report["keras"]:
        report["max_abs_diff"] = max(report["keras"].values())
    return report
