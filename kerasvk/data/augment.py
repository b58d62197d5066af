"""Augmentation configs: one string → the batch augmenter of the training pipeline (or model layers).

A config is a named preset plus per-op overrides, written as one string::

    standard                      rotation ±15°, zoom ±20%, brightness ±20%, contrast ±20%
    standard,rotation=30,flip=horizontal
    rotation=15,cutmix=1.0        no preset name: starts from "none"

Ops (value 0 / none switches an op off):

    rotation=DEG      angle ~ U(−DEG, DEG)                     (keras RandomRotation)
    zoom=F            zoom factor ~ U(1−F, 1+F)                (keras RandomZoom)
    translation=F     shift ~ U(−F, F)·size per axis           (keras RandomTranslation)
    flip=horizontal|vertical|both|none                         (keras RandomFlip)
    fill=reflect|constant|nearest                               where geometric ops uncover pixels
    brightness=F      I·α, α ~ U(1−F, 1+F)
    contrast=F        α(I−μ)+μ, α ~ U(1−F, 1+F)                (keras RandomContrast)
    hue=F, saturation=F                                         (keras RandomHue/RandomSaturation; RGB only)
    randaugment=N     N random ops per image                   (keras RandAugment)
    cutmix=A          box pasted from a partner, λ ~ Beta(A, A), labels mixed by the pasted share
    mixup=A           x = λx₁ + (1−λ)x₂, λ ~ Beta(A, A), one-hot labels mixed by the same λ (keras MixUp)

:class:`Augmenter` is what ``kerasvk.data.load(..., augment=...)`` maps over *training batches only*:
uint8 batches in, float32 [0, 1] batches out (the pipeline's ``to_float`` leaves those alone), or, on the
uint8 input path (``make_pipeline(..., image_dtype="uint8")``, what the trainer uses for classifiers),
rounded uint8 batches out (``Augmenter.apply(..., dtype="uint8")``), scaled by the model's train step. Order:
colour (brightness, contrast) → geometry (flip, rotation, zoom, translation) → hue/saturation →
RandAugment → CutMix → MixUp → ``/255`` (or rounding to uint8). Colour and geometry are one fused affine
resampling with the colour multiply-add applied to the neighbours as they are read, in one XLA-compiled
function together with the random draws (one seed per batch) and the final ``/255`` or uint8 rounding — see ``kerasvk.layers.augment`` and
``bench/augment_throughput.py``. :meth:`Augmenter.layers` gives the same ops as keras layers for use
inside a model (on the accelerator), mixing excepted (it needs labels).
"""

from __future__ import annotations

import difflib

PRESETS = {
    "none": {},
    "light": {"rotation": 10.0, "zoom": 0.1, "translation": 0.05},
    "standard": {"rotation": 15.0, "zoom": 0.2, "brightness": 0.2, "contrast": 0.2},
    "strong": {
        "rotation": 20.0,
        "zoom": 0.25,
        "translation": 0.1,
        "brightness": 0.3,
        "contrast": 0.3,
        "cutmix": 1.0,
    },
}
NUMERIC_OPS = (
    "rotation",
    "zoom",
    "translation",
    "brightness",
    "contrast",
    "hue",
    "saturation",
    "cutmix",
    "mixup",
)
FLIPS = {"none": None, "horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}
FILLS = ("reflect", "constant", "nearest")
OPS = (*NUMERIC_OPS, "randaugment", "flip", "fill")
DEFAULTS = {**{k: 0.0 for k in NUMERIC_OPS}, "randaugment": 0, "flip": "none", "fill": "reflect"}
AUGMENT_FORMS = (
    f"a preset ({'|'.join(PRESETS)}) and/or comma-separated overrides op=value with ops {', '.join(OPS)}"
)


def _bad(msg):
    return ValueError(f"{msg} Allowed: {AUGMENT_FORMS}.")


def parse_augment(spec) -> dict:
    """``"standard,rotation=30"`` → the full op dict (every op present, defaults filled in).

    Accepts None/"" (no augmentation), a string, or a dict of overrides (optionally with "preset").
    """
    if spec is None or spec == "":
        items, preset = {}, "none"
    elif isinstance(spec, dict):
        items = dict(spec)
        preset = items.pop("preset", "none")
    elif isinstance(spec, str):
        items, preset = {}, None
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq:
                if preset is not None or items:
                    raise _bad(f"Augmentation preset {item!r} must come first and only once in {spec!r}.")
                preset = key
                continue
            if key in items:
                raise _bad(f"Augmentation op {key!r} given twice in {spec!r}.")
            items[key] = value.strip()
        preset = preset or "none"
    else:
        raise _bad(f"Augmentation must be a string or dict. Received: {spec!r}.")
    if preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), list(PRESETS) + list(OPS), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise _bad(f"Unknown augmentation {preset!r}.{hint}")
    cfg = {**DEFAULTS, **PRESETS[preset]}
    for key, value in items.items():
        if key not in OPS:
            close = difflib.get_close_matches(key, OPS, n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise _bad(f"Unknown augmentation op {key!r}.{hint}")
        cfg[key] = _parse_value(key, value)
    return cfg


def _parse_value(key, value):
    if key == "flip":
        v = str(value).lower()
        if v not in FLIPS:
            raise ValueError(f"flip must be one of {', '.join(FLIPS)}. Received: flip={value!r}")
        return v
    if key == "fill":
        v = str(value).lower()
        if v not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}. Received: fill={value!r}")
        return v
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Augmentation op {key} takes a number. Received: {key}={value!r}") from None
    if num != num or num < 0:
        raise ValueError(f"Augmentation op {key} must be >= 0. Received: {key}={value!r}")
    if key == "randaugment":
        if num != int(num):
            raise ValueError(
                f"randaugment is a whole number of ops per image. Received: randaugment={value!r}"
            )
        return int(num)
    if key in ("zoom", "translation") and num >= 1.0:
        raise ValueError(f"{key} is a fraction of the image size and must be < 1. Received: {key}={value!r}")
    if key in ("brightness", "contrast", "hue", "saturation") and num > 1.0:
        raise ValueError(f"{key} must be in [0, 1]. Received: {key}={value!r}")
    return num


def describe(cfg) -> str:
    """The non-default ops of a parsed config, as the string that recreates it (``none`` if empty)."""
    parts = [
        f"{k}={cfg[k]:g}" if isinstance(cfg[k], float) else f"{k}={cfg[k]}"
        for k in OPS
        if cfg[k] != DEFAULTS[k]
    ]
    return ",".join(parts) or "none"


_FUSED = {}  # (affine ops, colour ops, output, backend) -> the compiled fused step (Augmenter._fused)


class Augmenter:
    """``(uint8 images, labels) → (float32 images in [0, 1], labels)`` for whole training batches.

    ``num_classes`` lets CutMix/MixUp one-hot integer labels themselves; without it they need one-hot
    labels (``load(..., one_hot=True)``). Randomness comes from per-op ``SeedGenerator``s seeded from
    ``seed``.
    """

    def __init__(self, spec="standard", *, num_classes=None, seed=0):
        import keras

        from kerasvk.layers.augment import CutMix, RandomAffine, RandomColor

        self.config = parse_augment(spec)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        self.num_classes = num_classes
        c = self.config
        self.affine = RandomAffine(
            rotation=c["rotation"],
            zoom=c["zoom"],
            translation=c["translation"],
            flip=FLIPS[c["flip"]],
            fill_mode=c["fill"],
            seed=seed,
            name="augment_affine",
        )
        self.color = RandomColor(
            brightness=c["brightness"], contrast=c["contrast"], seed=seed + 1, name="augment_color"
        )
        self.tail = []  # keras core ops on float 0..255 images, after the fused ops
        if c["hue"]:
            self.tail.append(
                keras.layers.RandomHue(c["hue"], value_range=(0, 255), seed=seed + 2, name="augment_hue")
            )
        if c["saturation"]:
            self.tail.append(
                keras.layers.RandomSaturation(
                    c["saturation"], value_range=(0, 255), seed=seed + 3, name="augment_saturation"
                )
            )
        if c["randaugment"]:
            self.tail.append(
                keras.layers.RandAugment(
                    value_range=(0, 255), num_ops=c["randaugment"], seed=seed + 4, name="augment_randaugment"
                )
            )
        self.mixers = []
        if c["cutmix"]:
            self.mixers.append(CutMix(alpha=c["cutmix"], seed=seed + 5, name="augment_cutmix"))
        if c["mixup"]:
            self.mixers.append(keras.layers.MixUp(alpha=c["mixup"], seed=seed + 6, name="augment_mixup"))

    @property
    def active(self) -> bool:
        return self.affine.active or self.color.active or bool(self.tail) or bool(self.mixers)

    @property
    def needs_one_hot(self) -> bool:
        """True when labels are mixed (CutMix/MixUp): the loss and metrics must take one-hot targets."""
        return bool(self.mixers)

    def __repr__(self):
        return f"Augmenter({describe(self.config)!r})"

    def _check_channels(self, channels):
        if (self.config["hue"] or self.config["saturation"]) and channels != 3:
            raise ValueError(
                f"hue/saturation augmentation needs RGB images (3 channels). "
                f"Received: {channels} channel(s); "
                "drop hue=/saturation= for grayscale data."
            )

    def __call__(self, images, labels):
        return self.apply(images, labels, dtype="float32")

    def _fused(self, out):
        """The colour + geometry step as one (XLA-compiled, on TensorFlow) function of (images, seed).

        Shared by every Augmenter with the same ops (the draws come from the seed argument, not from the
        layers' generators), so a config is compiled once per image shape in a process, not once per
        Augmenter (each XLA compile costs seconds of CPU)."""
        import keras

        from kerasvk.layers.augment import augment_seeded

        def ops_of(layer):
            return tuple(sorted((k, repr(v)) for k, v in layer.get_config().items() if k not in ("name", "seed", "trainable", "dtype")))

        key = (ops_of(self.affine), ops_of(self.color), out, keras.backend.backend())
        if key not in _FUSED:
            affine, color = self.affine, self.color

            def fused(images, seed):
                return augment_seeded(images, seed, affine, color, out=out)

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fused = tf.function(fused, jit_compile=True)
            _FUSED[key] = fused
        return _FUSED[key]

    def apply(self, images, labels, dtype="float32"):
        """One batch: ``dtype="float32"`` → images in [0, 1] (``__call__``); ``"uint8"`` → rounded uint8 0..255
        (the uint8 input path: the model scales on the device, see ``kerasvk.training.device_input``).

        Both make the same random draws for the same generator state (one seed per batch from the
        affine op's ``SeedGenerator``; every draw of the batch derived from it inside one compiled function).
        """
        data = (images, labels)
        for fn, _ in self.stages(dtype):
            data = fn(*data)
        return data

    def stages(self, dtype="float32"):
        """``[(fn, parallel), ...]``: the batch augmentation as ``tf.data`` map stages (``make_pipeline``).

        The stateful draws run in order, one batch after the other: a sequential stage takes the batch's
        seed from the generator, the parallel stage (the fused colour + geometry, stateless given the seed)
        runs batches side by side, and the keras tail/mixers (their own ``SeedGenerator`` draws) run
        sequentially again. (A stateful draw inside a parallel map takes whichever seed its thread gets
        first: batches would swap their augmentations from run to run.)
        """
        if dtype not in ("float32", "uint8"):
            raise ValueError(f"dtype must be 'float32' or 'uint8'. Received: dtype={dtype!r}")
        fused = self.affine.active or self.color.active
        last = not self.tail and not self.mixers
        out = []
        if fused:
            out.append((self._draw_seed, False))
            kind = ("unit" if dtype == "float32" else "uint8") if last else "float"
            out.append((lambda images, labels, seed: self._fused_stage(images, labels, seed, kind), True))
        else:
            out.append((lambda images, labels: self._prepare(images, labels), True))
        if not last:
            out.append((lambda images, labels: self._tail_stage(images, labels, dtype), False))
        return out

    def _prepare(self, images, labels):
        """Checks and label one-hot (mixers), no randomness."""
        import keras
        from keras import ops

        self._check_channels(int(images.shape[-1]))
        if self.mixers and "int" in keras.backend.standardize_dtype(labels.dtype):
            if self.num_classes is None:
                raise ValueError(
                    "cutmix/mixup mix labels, so they need one-hot labels: pass one_hot=True to "
                    "kerasvk.data.load (or num_classes=... to the Augmenter). Received integer labels."
                )
            labels = ops.one_hot(labels, self.num_classes)
        return images, labels

    def _draw_seed(self, images, labels):
        return images, labels, self.affine.generator.next()

    def _fused_stage(self, images, labels, seed, kind):
        images, labels = self._prepare(images, labels)
        return self._fused(kind)(images, seed), labels

    def _tail_stage(self, x, labels, dtype):
        from keras import ops

        if "int" in str(x.dtype):
            x = ops.cast(x, "float32")
        for layer in self.tail:
            x = layer(x, training=True)
        for mixer in self.mixers:
            mixed = mixer({"images": x, "labels": ops.cast(labels, "float32")}, training=True)
            x, labels = mixed["images"], mixed["labels"]
        if dtype == "uint8":
            from kerasvk.layers.augment import _round_to

            return _round_to(ops.clip(ops.cast(x, "float32"), 0.0, 255.0), "uint8"), labels
        return ops.cast(x, "float32") / 255.0, labels

    def layers(self, value_range=(0, 1)):
        """The same ops as keras layers for the inside of a model (inputs in ``value_range``).

        Geometric and colour ops only: CutMix/MixUp mix labels and stay in the data pipeline.
        """
        import keras

        from kerasvk.layers.augment import RandomAffine, RandomColor

        if self.mixers:
            raise ValueError(
                "cutmix/mixup change labels too, so they cannot run inside a model; "
                "apply them in the data pipeline (kerasvk.data.load(..., augment=...))."
            )
        c, out = self.config, []
        if self.color.active:
            cfg = self.color.get_config()
            cfg["value_range"] = tuple(value_range)
            out.append(RandomColor.from_config(cfg))
        if self.affine.active:
            out.append(RandomAffine.from_config(self.affine.get_config()))
        vr = tuple(value_range)
        if c["hue"]:
            out.append(keras.layers.RandomHue(c["hue"], value_range=vr, name="augment_hue"))
        if c["saturation"]:
            out.append(
                keras.layers.RandomSaturation(c["saturation"], value_range=vr, name="augment_saturation")
            )
        if c["randaugment"]:
            out.append(
                keras.layers.RandAugment(value_range=vr, num_ops=c["randaugment"], name="augment_randaugment")
            )
        return out


def make_augmenter(spec, *, num_classes=None, seed=0):
    """An :class:`Augmenter` for ``spec``, or None when the config augments nothing."""
    if isinstance(spec, Augmenter):
        return spec if spec.active else None
    aug = Augmenter(spec, num_classes=num_classes, seed=seed)
    return aug if aug.active else None


def augmentation_model(spec, input_shape, *, value_range=(0, 1), name="augmentation"):
    """A ``keras.Sequential`` of the config's ops, to put in front of a model (active only in training)."""
    import keras

    layers = Augmenter(spec).layers(value_range=value_range)
    return keras.Sequential([keras.Input(tuple(input_shape)), *layers], name=name)
