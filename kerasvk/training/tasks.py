"""What each task contributes to the one trainer: its data adapter, loss/metrics, report and outputs.

``kerasvk.training.train`` is the same short pipeline for every registered model (see ``trainer.py``);
the parts that differ by task live here, one class per task, chosen by the model's registered task:

============== ============================================ =============================================
task           data (``--data``)                            report (metrics.json) and files
============== ============================================ =============================================
classification image sources (digits, patterns, folder:...) accuracy, top-k, P/R/F1, confusion matrix
generative     image sources (VAE, CVAE, DCGAN, WGAN-GP)    VAE: test −ELBO; GAN: D/G losses; samples.png
autoregressive GPT: pydoc | file:PATH; WaveNet: audio;      held-out nats, bits per token/sample/dim,
               PixelCNN: image sources (quantised)          perplexity; samples.txt / .wav / .png
detection      shapes[:count=N,...] (boxes, labels, masks)  COCO mAP@[.5:.95], @.5, @.75, S/M/L, per-class AP
                                                            (pycocotools; + segm for masks); detections.png
============== ============================================ =============================================

An adapter returns a :class:`RunData` (pipelines, the keyword arguments the model is built with, and the
facts ``run.json`` records to re-create the data later); ``data_from_config`` re-creates it from
``run.json`` for ``kerasvk evaluate`` and ``kerasvk predict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerasvk import io

FINE_TUNE_FORMS = "frozen, top-N (N >= 1 blocks), full"


@dataclass
class RunData:
    """Pipelines of one run's data and what the model needs to be built for it."""

    train: object
    val: object
    test: object
    build_kwargs: dict
    config: dict  # facts for run.json (data name, split, image size, class names, vocabulary, ...)
    steps_per_epoch: int
    extras: dict = field(default_factory=dict)  # arrays the report needs (test images, tokenizer, ...)


def compile_kwargs(opts) -> dict:
    """What every task passes to ``model.compile`` besides its losses: ``jit_compile`` (``train(jit_compile=...)``)."""
    return {"jit_compile": opts.get("jit_compile", "auto")}


def _steps(count, batch_size):
    return max(1, -(-int(count) // int(batch_size)))


def _image_data(source, opts, seed, *, image_size=None, channels=None, augment=None, one_hot=False,
                train_dtype="float32"):
    from kerasvk import data as kdata

    return kdata.load(
        source,
        train_dtype=train_dtype,
        image_size=image_size,
        channels=channels,
        batch_size=opts["batch_size"],
        val_split=opts["val_split"],
        test_split=opts["test_split"],
        seed=seed,
        augment=augment,
        one_hot=one_hot,
    )


def _image_config(ds, source, opts):
    return {
        "data": source if isinstance(source, str) else "arrays",
        "image_size": list(ds.input_shape[:2]),
        "channels": int(ds.input_shape[2]),
        "val_split": opts["val_split"],
        "test_split": opts["test_split"],
        "class_names": list(ds.class_names),
        "counts": dict(ds.counts),
    }


def _check_image_source(source):
    from kerasvk.data import parse_source

    if isinstance(source, (tuple, list)):
        if len(source) == 2 and isinstance(source[1], dict):
            raise ValueError(
                "Array data for this model must be (images, labels) with one integer class index per image; "
                f"(images, {{{', '.join(repr(k) for k in source[1])}}}) is a detection source (yolo, ssd)."
            )
        return
    kind, _ = parse_source(source)  # raises ValueError naming the allowed sources
    if kind == "folder":
        path = Path(source.partition(":")[2])
        if not path.is_dir():
            raise FileNotFoundError(f"Image folder not found: {path} (folder:PATH needs one subfolder per class).")


class Task:
    """Base adapter. Subclasses set ``name`` and override what differs."""

    name = ""
    # training options that make no sense for the task (with the reason, for the error message)
    unsupported: dict = {}
    # options only this task takes, with their defaults
    options: dict = {}
    # the optimizer the task uses when neither the user nor the model's recipe names one
    default_optimizer = "adam"
    default_lr = 1e-3
    monitor = "val_loss"  # checkpoint metric (None: keep the last epoch)

    def default_optimizer_for(self, spec):
        return self.default_optimizer

    def check(self, spec, source, opts, transfer) -> None:
        """Cheap checks before anything is loaded, built or written."""
        for key, why in self.unsupported.items():
            if opts.get(key):
                raise ValueError(f"{spec.name} ({self.name}) does not take {key}: {why}.")
        if any(transfer.values()):
            raise ValueError(
                f"--weights/--fine-tune/--l2sp are for classifiers; {spec.name} is a {self.name} model."
            )

    def load(self, spec, source, opts, seed, model_kwargs) -> RunData:
        raise NotImplementedError

    def build(self, spec, run_data, model_kwargs, transfer):
        from kerasvk.registry import build

        kw = {**run_data.build_kwargs, **(model_kwargs or {})}
        return build(spec.name, **kw), kw

    def compile(self, model, optimizer, opts) -> None:
        model.compile(optimizer=optimizer, **compile_kwargs(opts))

    def callbacks(self, out, run_data, opts) -> list:
        return []

    def describe_augment(self, augment) -> str:
        """What run.json records for ``augment`` (classifier presets are expanded to their operations)."""
        if augment is None:
            return "none"
        from kerasvk.data.augment import Augmenter, describe, parse_augment

        if isinstance(augment, Augmenter):
            return describe(augment.config)
        return describe(parse_augment(augment))

    def report(self, model, run_data, out) -> dict:
        raise NotImplementedError

    def data_from_config(self, config, *, source=None, batch_size=None) -> RunData:
        opts = {
            "batch_size": batch_size or config["batch_size"],
            "val_split": config.get("val_split", 0.1),
            "test_split": config.get("test_split", 0.2),
            **{k: config.get(k, v) for k, v in self.options.items()},
        }
        return self.load_from_config(config, source or config["data"], opts)

    def load_from_config(self, config, source, opts) -> RunData:
        raise NotImplementedError

    def export_kwargs(self, config) -> dict:
        return {}

    def predict(self, model, config, files, out, *, top_k=3, num=16, seed=0, prompt=None) -> list[str]:
        raise ValueError(f"`kerasvk predict` has nothing to predict for a {self.name} model.")


# -------------------------------------------------------------------------------------- classification
AUGMENT_ON = ("host", "device")


class ClassificationTask(Task):
    name = "classification"
    # augment_on: "host" (tf.data, on the CPU) | "device" (in the train step: device_input.augment_in_step)
    options = {"augment_on": "host"}

    def check(self, spec, source, opts, transfer):
        _check_image_source(source)
        if opts.get("augment_on") not in AUGMENT_ON:
            raise ValueError(f"augment_on must be one of {', '.join(AUGMENT_ON)}. "
                             f"Received: {opts.get('augment_on')!r}")
        if isinstance(opts.get("augment"), (str, dict)):
            from kerasvk.data.augment import parse_augment

            cfg = parse_augment(opts["augment"])  # raises naming the presets and operations
            if opts["augment_on"] == "device" and (cfg["cutmix"] or cfg["mixup"]):
                raise ValueError("cutmix/mixup mix labels too, so they run on the host: drop them or use "
                                 "--augment-on host.")
        weights, fine_tune, l2sp = transfer["weights"], transfer["fine_tune"], transfer["l2sp"]
        if fine_tune is not None:
            parse_fine_tune(fine_tune)
            if weights is None:
                raise ValueError("--fine-tune needs --weights imagenet|PATH (the pretrained encoder to fine-tune).")
        if l2sp is not None:
            if not isinstance(l2sp, (int, float)) or isinstance(l2sp, bool) or not l2sp > 0:
                raise ValueError(f"l2sp must be a number > 0 (the L2-SP strength λ). Received: l2sp={l2sp!r}")
            if parse_fine_tune(fine_tune or "frozen") == 0:
                raise ValueError("--l2sp regularises fine-tuned encoder weights: use it with --fine-tune top-N or full.")
        if weights is not None and weights != "imagenet":
            p = Path(weights)
            if not (p.is_file() or (p.is_dir() and (p / "model.keras").is_file())):
                raise FileNotFoundError(
                    f"No weights at {weights}: allowed are 'imagenet', a .weights.h5 or .keras file, or a run folder."
                )

    def load(self, spec, source, opts, seed, model_kwargs):
        from kerasvk.data.augment import make_augmenter

        augment = make_augmenter(opts["augment"], seed=seed)
        one_hot = bool(opts["label_smoothing"]) or bool(augment is not None and augment.needs_one_hot)
        on_device = augment if opts.get("augment_on") == "device" else None  # the train step augments
        image_size = opts.get("image_size")
        if image_size is None and isinstance(source, str) and source.startswith("folder:"):
            image_size = (spec.default_input_shape or (224, 224, 3))[:2]
        # uint8 training batches: scaled to [0, 1] in the train step, on the device (training/device_input.py)
        ds = _image_data(source, opts, seed, image_size=image_size, channels=opts.get("channels"),
                         augment=None if on_device is not None else augment, one_hot=one_hot, train_dtype="uint8")
        config = _image_config(ds, source, opts)
        config["one_hot"] = one_hot
        return RunData(
            ds.train, ds.val, ds.test,
            build_kwargs={"input_shape": ds.input_shape, "num_classes": ds.num_classes},
            config=config,
            steps_per_epoch=_steps(ds.counts["train"], opts["batch_size"]),
            extras={"class_names": ds.class_names, "device_augment": on_device},
        )

    def load_from_config(self, config, source, opts):
        ds = _image_data(source, opts, config["seed"], image_size=tuple(config["image_size"]),
                         channels=config["channels"])
        return RunData(ds.train, ds.val, ds.test, {}, _image_config(ds, source, opts),
                       _steps(ds.counts["train"], opts["batch_size"]), {"class_names": ds.class_names})

    def build(self, spec, run_data, model_kwargs, transfer):
        from kerasvk.registry import build

        kw = {**run_data.build_kwargs, **(model_kwargs or {})}
        if transfer["weights"] is None:
            return build(spec.name, **kw), kw
        return self._transfer_model(spec, kw, transfer), kw

    @staticmethod
    def _transfer_model(spec, kw, transfer):
        """Pretrained encoder (imagenet, a .weights.h5, a .keras file or a run) + a new head, frozen or fine-tuned."""
        from kerasvk.registry import build
        from kerasvk.training import transfer as tl

        weights = transfer["weights"]
        p = Path(weights) if weights != "imagenet" else None
        base_kw = {k: v for k, v in kw.items() if k != "num_classes"}
        if p is not None and (p.is_dir() or p.suffix == ".keras"):
            base = p  # a kerasvk run folder or .keras file: its encoder
        else:
            base = build(spec.name, include_top=False, weights=weights, **base_kw)
        mode = parse_fine_tune(transfer["fine_tune"] or "frozen")
        model = tl.transfer_classifier(base, kw["num_classes"], freeze=True, name=spec.name)
        if mode:
            tl.fine_tune(model, "all" if mode == "full" else mode, l2sp=transfer["l2sp"])
        return model

    def compile(self, model, optimizer, opts):
        from kerasvk.training.losses import classification_loss_and_metrics

        loss, metrics = classification_loss_and_metrics(opts["one_hot"], opts["label_smoothing"])
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_kwargs(opts))

    def report(self, model, run_data, out):
        return evaluate_classifier(model, run_data.test, run_data.config["class_names"], out)

    def export_kwargs(self, config):
        return {"class_names": config["class_names"]}

    def predict(self, model, config, files, out, *, top_k=3, num=16, seed=0, prompt=None):
        from kerasvk.data.files import read_images

        if not files:
            raise ValueError("kerasvk predict on a classifier needs image files: kerasvk predict RUN a.jpg b.png ...")
        images = read_images(files, config["image_size"], config["channels"])
        probs = np.asarray(model.predict(images, verbose=0))
        return format_top_k(files, probs, config["class_names"], top_k)


def parse_fine_tune(text):
    """``"frozen"`` → 0, ``"top-N"`` → N, ``"full"`` → ``"full"``; anything else raises naming the forms."""
    if text in ("frozen", "full"):
        return 0 if text == "frozen" else "full"
    if isinstance(text, str) and text.startswith("top-") and text[4:].isdigit() and int(text[4:]) >= 1:
        return int(text[4:])
    raise ValueError(f"Unknown fine-tune mode {text!r}. Allowed: {FINE_TUNE_FORMS}.")


def top_k_table(probs, class_names, k):
    """Per row of ``probs``: ``[(class name, probability), ...]`` of the ``k`` most likely classes."""
    probs = np.asarray(probs)
    k = min(int(k), probs.shape[-1])
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return [[(str(class_names[j]), float(p[j])) for j in row] for p, row in zip(probs, order)]


def format_top_k(files, probs, class_names, k):
    lines = []
    for f, row in zip(files, top_k_table(probs, class_names, k)):
        lines.append(f"{f}: " + ", ".join(f"{name} {p:.4f}" for name, p in row))
    return lines


def evaluate_classifier(model, dataset, class_names, out=None) -> dict:
    """Test-split report; with ``out`` also the confusion-matrix and prediction-grid plots."""
    from kerasvk import plots
    from kerasvk.evaluation import classification_report, predict_dataset

    y, probs, images = predict_dataset(model, dataset)
    report = classification_report(y, probs, class_names)
    if out is not None:
        out = Path(out)
        plots.confusion_matrix(report["confusion_matrix"], class_names, out / "plots" / "confusion_matrix.png")
        plots.prediction_grid(images, y, probs, class_names, out / "plots" / "predictions.png")
    return report


# ------------------------------------------------------------------------------- generative (images)
class GenerativeTask(Task):
    """VAE / CVAE (one optimizer, ``compute_loss``) and DCGAN / WGAN-GP (two optimizers, ``train_step``)."""

    name = "generative"
    unsupported = {"augment": "generative models learn the data distribution as it is",
                   "label_smoothing": "there are no class targets"}

    def _is_gan(self, spec):
        return spec.family in ("gan", "dcgan", "wgan_gp", "wgan") or spec.name in ("dcgan", "wgan_gp")

    def default_optimizer_for(self, spec):
        return None if self._is_gan(spec) else "adam"  # GANs compile their own two optimizers

    def check(self, spec, source, opts, transfer):
        super().check(spec, source, opts, transfer)
        _check_image_source(source)
        if self._is_gan(spec) and (opts.get("schedule") or opts.get("warmup")):
            raise ValueError(f"{spec.name} trains two optimizers with their own rates: --schedule/--warmup are not supported.")

    monitor = None  # GAN losses are no quality measure: checkpoints/last.keras keeps the last epoch

    def load(self, spec, source, opts, seed, model_kwargs):
        image_size = opts.get("image_size") or (spec.default_input_shape or (32, 32, 1))[:2]
        channels = opts.get("channels") or (model_kwargs or {}).get("input_shape", spec.default_input_shape or (0, 0, None))[2]
        # uint8 training batches: scaled to [0, 1] in the train step, on the device (training/device_input.py)
        ds = _image_data(source, opts, seed, image_size=image_size, channels=channels, train_dtype="uint8")
        return self._wrap(spec, ds, source, opts)

    def load_from_config(self, config, source, opts):
        ds = _image_data(source, opts, config["seed"], image_size=tuple(config["image_size"]),
                         channels=config["channels"])
        return self._wrap_from(config, ds, source, opts)

    def _conditional(self, spec, kw):
        return bool(kw.get("num_classes", spec.defaults.get("num_classes")))

    def _wrap(self, spec, ds, source, opts):
        kw = {"input_shape": ds.input_shape}
        if "num_classes" in spec.defaults:
            kw["num_classes"] = ds.num_classes
        run = self._pipelines(ds, conditional="num_classes" in kw)
        return RunData(*run, build_kwargs=kw, config={**_image_config(ds, source, opts), "conditional": "num_classes" in kw},
                       steps_per_epoch=_steps(ds.counts["train"], opts["batch_size"]))

    def _wrap_from(self, config, ds, source, opts):
        run = self._pipelines(ds, conditional=config.get("conditional", False))
        return RunData(*run, build_kwargs={}, config=_image_config(ds, source, opts),
                       steps_per_epoch=_steps(ds.counts["train"], opts["batch_size"]))

    @staticmethod
    def _pipelines(ds, conditional):
        # a conditional VAE takes [images, labels] as its input; the others take the images alone
        def images(x, y):
            return ([x, y],) if conditional else (x,)

        return tuple(split.map(images) for split in (ds.train, ds.val, ds.test))

    def callbacks(self, out, run_data, opts):
        from kerasvk.training.callbacks import SampleGridCallback

        # a fixed-noise sample grid every ~fifth of the run: plots/samples_epochNNN.png
        if run_data.config.get("conditional"):
            return []  # a conditional model's decoder needs labels too; plots/samples.png shows it at the end
        return [SampleGridCallback(Path(out) / "plots", num_images=64, every=max(1, opts["epochs"] // 5), seed=0)]

    def compile(self, model, optimizer, opts):
        if optimizer is None:
            model.compile(**compile_kwargs(opts))  # the model's own defaults (GAN: Adam(2e-4, β1=0.5) for each network)
        else:
            model.compile(optimizer=optimizer, **compile_kwargs(opts))

    def report(self, model, run_data, out):
        results = model.evaluate(run_data.test, verbose=0, return_dict=True)
        report = {f"test_{k}": float(v) for k, v in results.items()}
        images, labels = _test_arrays(run_data.test)
        if hasattr(model, "negative_elbo"):
            nelbo = model.negative_elbo(images, labels)
            report["test_negative_elbo_nats"] = float(np.mean(nelbo))
            report["test_negative_elbo_bits_per_dim"] = float(np.mean(nelbo) / (math.log(2.0) * np.prod(images.shape[1:])))
        report["num_examples"] = int(len(images))
        if out is not None:
            self.write_samples(model, Path(out) / "plots" / "samples.png", num=64, seed=0, labels=labels)
            if hasattr(model, "reconstruct"):
                from kerasvk import plots

                n = min(16, len(images))
                recon = np.asarray(model.reconstruct(images[:n], None if labels is None else labels[:n]))
                plots.image_grid(np.concatenate([images[:n], recon]), Path(out) / "plots" / "reconstructions.png",
                                 cols=n, title="test images (top) and reconstructions (bottom)")
        return report

    @staticmethod
    def write_samples(model, path, *, num, seed, labels=None):
        from kerasvk import plots

        if getattr(model, "num_classes", 0):
            k = int(model.num_classes)
            images = model.sample(num, seed=seed, labels=np.arange(num) % k)
        else:
            images = model.sample(num, seed=seed)
        return plots.image_grid(np.asarray(images), path, title=f"{model.name} samples (seed {seed})")

    def predict(self, model, config, files, out, *, top_k=3, num=16, seed=0, prompt=None):
        if files:
            raise ValueError(f"kerasvk predict on a {self.name} model takes no input files; it writes --num samples to --out.")
        path = self.write_samples(model, Path(out) / "samples.png", num=num, seed=seed)
        return [f"wrote {num} samples to {path}"]


def _test_arrays(ds):
    xs, labels = [], []
    for batch in ds:
        x = batch[0]
        if isinstance(x, (list, tuple)):
            xs.append(np.asarray(x[0]))
            labels.append(np.asarray(x[1]))
        else:
            xs.append(np.asarray(x))
    return np.concatenate(xs), (np.concatenate(labels) if labels else None)


# ---------------------------------------------------------------------------------- autoregressive
class AutoregressiveTask(Task):
    """GPT on text, WaveNet on audio, PixelCNN on quantised images: next-token cross-entropy in nats."""

    name = "autoregressive"
    unsupported = {"augment": "next-token models train on the data as it is",
                   "label_smoothing": "targets are the next tokens"}
    options = {"seq_len": None}
    default_optimizer = "adamw"

    TEXT = "pydoc (Python's pydoc_data.topics) or file:PATH (a UTF-8 text file)"
    AUDIO = "audio (seeded synthetic tones, chirps and noise; see kerasvk.data.audio)"

    def kind(self, spec):
        kinds = {"gpt": "text", "wavenet": "audio", "pixelcnn": "images"}
        if spec.family not in kinds:
            raise ValueError(f"No data adapter for the autoregressive family {spec.family!r}. Known: {', '.join(kinds)}.")
        return kinds[spec.family]

    def check(self, spec, source, opts, transfer):
        super().check(spec, source, opts, transfer)
        kind = self.kind(spec)
        if kind == "text":
            if not isinstance(source, str) or not (source == "pydoc" or (source.startswith("file:") and len(source) > 5)):
                raise ValueError(f"Unknown text source {source!r} for {spec.name}. Allowed: {self.TEXT}.")
            if source.startswith("file:") and not Path(source[5:]).is_file():
                raise FileNotFoundError(f"Text file not found: {source[5:]}")
        elif kind == "audio":
            if source != "audio":
                raise ValueError(f"Unknown audio source {source!r} for {spec.name}. Allowed: {self.AUDIO}.")
        else:
            _check_image_source(source)
        seq_len = opts.get("seq_len")
        if seq_len is not None and (not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 2):
            raise ValueError(f"seq_len must be an integer >= 2. Received: seq_len={seq_len!r}")
        if kind == "images" and seq_len is not None:
            raise ValueError(f"{spec.name} models whole images: seq_len does not apply.")

    # -- data
    def load(self, spec, source, opts, seed, model_kwargs):
        kind = self.kind(spec)
        kw = dict(model_kwargs or {})
        if kind == "text":
            return self._text(source, opts, seed, kw.get("context_length"))
        if kind == "audio":
            channels = kw.get("quantization_channels", spec.defaults.get("quantization_channels", 256))
            return self._audio(source, opts, seed, channels, kw.get("sample_rate", spec.defaults.get("sample_rate", 8000)))
        levels = kw.get("levels", spec.defaults.get("levels", 256))
        shape = kw.get("input_shape", spec.default_input_shape or (16, 16, 1))
        image_size = opts.get("image_size") or shape[:2]
        return self._levels(source, opts, seed, levels, image_size, opts.get("channels") or shape[2])

    def load_from_config(self, config, source, opts):
        kind = config["data_kind"]
        if kind == "text":
            return self._text(source, opts, config["seed"], None, vocab=config["vocab"])
        if kind == "audio":
            return self._audio(source, opts, config["seed"], config["quantization_channels"], config["sample_rate"])
        return self._levels(source, opts, config["seed"], config["levels"], tuple(config["image_size"]), config["channels"])

    def _text(self, source, opts, seed, context_length, vocab=None):
        from kerasvk.data import text

        seq_len = opts.get("seq_len") or context_length or 64
        corpus = text.load_corpus(source)
        tokenizer = text.CharTokenizer(vocab) if vocab else text.CharTokenizer.from_text(corpus)
        ids = tokenizer.encode(corpus)
        rest, test_ids = text.split_ids(ids, opts["test_split"])
        train_ids, val_ids = text.split_ids(rest, opts["val_split"] / max(1e-9, 1.0 - opts["test_split"]))
        bs = opts["batch_size"]
        train = text.text_dataset(train_ids, seq_len, bs, seed=seed, stride=max(1, seq_len // 2))
        val = text.text_dataset(val_ids, seq_len, bs, shuffle=False)
        test = text.text_dataset(test_ids, seq_len, bs, shuffle=False)
        n_train = len(range(0, len(train_ids) - seq_len, max(1, seq_len // 2)))  # windows per epoch
        config = {"data": source, "data_kind": "text", "vocab": tokenizer.vocab, "seq_len": seq_len,
                  "val_split": opts["val_split"], "test_split": opts["test_split"],
                  "counts": {"train": len(train_ids), "val": len(val_ids), "test": len(test_ids)}}
        return RunData(train, val, test, {"vocab": tokenizer.vocab, "context_length": seq_len}, config,
                       _steps(n_train, bs), {"unit": "char", "train_ids": train_ids})

    def _audio(self, source, opts, seed, channels, sample_rate):
        from kerasvk.data import audio

        seq_len = opts.get("seq_len") or 1024
        waves, _ = audio.synthetic_audio(count=48, duration=1.0, sample_rate=sample_rate, seed=seed)
        n = len(waves)
        n_test = max(1, int(round(n * opts["test_split"])))
        n_val = max(1, int(round(n * opts["val_split"])))
        parts = {"test": waves[:n_test], "val": waves[n_test:n_test + n_val], "train": waves[n_test + n_val:]}
        bs = opts["batch_size"]
        train = audio.audio_dataset(parts["train"], seq_len, bs, seed=seed, channels=channels)
        val = audio.audio_dataset(parts["val"], seq_len, bs, seed=seed + 1, shuffle=False, channels=channels)
        test = audio.audio_dataset(parts["test"], seq_len, bs, seed=seed + 2, shuffle=False, channels=channels)
        config = {"data": source, "data_kind": "audio", "seq_len": seq_len, "quantization_channels": channels,
                  "sample_rate": sample_rate, "val_split": opts["val_split"], "test_split": opts["test_split"],
                  "counts": {k: len(v) for k, v in parts.items()}}
        return RunData(train, val, test, {"quantization_channels": channels, "sample_rate": sample_rate}, config,
                       _steps(8 * len(parts["train"]), bs), {"unit": "sample"})

    def _levels(self, source, opts, seed, levels, image_size, channels):
        import tensorflow as tf

        ds = _image_data(source, opts, seed, image_size=tuple(image_size), channels=channels)

        def to_levels(x, y):
            q = tf.cast(tf.round(x * (levels - 1)), tf.int32)
            return tf.cast(q, tf.float32) / float(levels - 1), q

        train, val, test = (split.map(to_levels) for split in (ds.train, ds.val, ds.test))
        config = {**_image_config(ds, source, opts), "data_kind": "images", "levels": levels}
        return RunData(train, val, test, {"input_shape": ds.input_shape, "levels": levels}, config,
                       _steps(ds.counts["train"], opts["batch_size"]), {"unit": "dim"})

    # -- training and report
    def compile(self, model, optimizer, opts):
        model.compile(optimizer=optimizer, **compile_kwargs(opts))

    def report(self, model, run_data, out):
        nats = float(model.evaluate(run_data.test, verbose=0, return_dict=True)["loss"])
        unit = run_data.extras.get("unit") or {"text": "char", "audio": "sample", "images": "dim"}[run_data.config["data_kind"]]
        report = {f"test_nats_per_{unit}": nats, f"test_bits_per_{unit}": nats / math.log(2.0),
                  "test_perplexity": math.exp(min(nats, 700.0))}
        if out is not None:
            report["samples"] = self.predict(model, run_data.config, [], out, num=4, seed=0)
        return report

    def predict(self, model, config, files, out, *, top_k=3, num=16, seed=0, prompt=None):
        if files:
            raise ValueError("kerasvk predict on an autoregressive model takes no input files (use --prompt for GPT).")
        out = Path(out)
        kind = config["data_kind"]
        if kind == "text":
            prompt = prompt if prompt is not None else model.default_prompt()
            steps = max(1, min(200, model.context_length - len(prompt)))
            texts = model.generate(prompt, steps, num_samples=num, seed=seed, temperature=0.8, top_p=0.95)
            path = io.write_text(out / "samples.txt", "".join(f"=== sample {i} ===\n{t}\n" for i, t in enumerate(texts)))
            return [f"wrote {len(texts)} samples to {path}"]
        if kind == "audio":
            from kerasvk.data import audio

            waves = model.generate(min(2000, 2 * model.receptive_field), num_samples=num, seed=seed)
            paths = [audio.write_wav(out / f"sample_{i}.wav", w, model.sample_rate) for i, w in enumerate(waves)]
            return [f"wrote {len(paths)} WAV samples to {out}"]
        from kerasvk import plots

        images = model.generate(num, seed=seed)
        path = plots.image_grid(images, out / "samples.png", title=f"{model.name} samples (seed {seed})")
        return [f"wrote {num} samples to {path}"]


# ---------------------------------------------------------------------------------------- detection
EVAL_SCORE_THRESHOLD = 0.001  # detections kept for COCO mAP (measured on yolo: mAP@.5 0.718 at 0.05, 0.743 here)


class DetectionTask(Task):
    """YOLO, SSD, Faster/Mask R-CNN on box data (``shapes`` or arrays): COCO metrics from pycocotools."""

    name = "detection"
    unsupported = {"label_smoothing": "detector class losses have their own targets",
                   "channels": "detectors take RGB images"}
    default_optimizer = "adamw"
    monitor = "val_loss"

    def check(self, spec, source, opts, transfer):
        super().check(spec, source, opts, transfer)
        from kerasvk.data.detection import make_detection_augmenter, parse_detection_source

        if not isinstance(source, tuple):
            _, source_opts = parse_detection_source(source)  # raises naming the allowed sources
            size, side = opts.get("image_size"), source_opts.get("size")
            if size is not None and side is not None and tuple(size) != (side, side):
                # the source's size won and image_size was ignored silently (the model built for the other size)
                raise ValueError(
                    f"The data source {source!r} makes {side}x{side} images but image_size={tuple(size)}: give the "
                    f"size once (shapes:size=N or --image-size, not both)."
                )
        if opts.get("augment") == "none":
            opts["augment"] = None
        make_detection_augmenter(opts.get("augment"))  # raises naming the box-aware modes

    def describe_augment(self, augment):
        return "none" if augment is None else str(augment)

    def _input_size(self, spec, opts, model_kwargs):
        if opts.get("image_size") is not None:
            return tuple(opts["image_size"])
        shape = (model_kwargs or {}).get("input_shape") or spec.default_input_shape or (128, 128, 3)
        return tuple(shape[:2])

    def load(self, spec, source, opts, seed, model_kwargs):
        from kerasvk.data.detection import load_detection

        size = self._input_size(spec, opts, model_kwargs)
        if isinstance(source, (tuple, list)) and opts.get("image_size") is None and not (model_kwargs or {}).get("input_shape"):
            size = None  # arrays keep their own size (the model's default would refuse every other size)
        with_masks = bool(getattr(spec.builder, "uses_masks", False)) or spec.family == "mask_rcnn"
        dd = load_detection(source, image_size=size, batch_size=opts["batch_size"], val_split=opts["val_split"],
                            test_split=opts["test_split"], seed=seed, augment=opts["augment"], with_masks=with_masks)
        return self._wrap(dd, source, opts, with_masks)

    def load_from_config(self, config, source, opts):
        from kerasvk.data.detection import load_detection

        with_masks = bool(config.get("with_masks", False))
        dd = load_detection(source, image_size=tuple(config["image_size"]), batch_size=opts["batch_size"],
                            val_split=opts["val_split"], test_split=opts["test_split"], seed=config["seed"],
                            with_masks=with_masks)
        return self._wrap(dd, source, opts, with_masks)

    def _wrap(self, dd, source, opts, with_masks):
        config = {
            "data": source if isinstance(source, str) else "arrays",
            "image_size": list(dd.input_shape[:2]),
            "channels": int(dd.input_shape[2]),
            "val_split": opts["val_split"],
            "test_split": opts["test_split"],
            "class_names": list(dd.class_names),
            "counts": dict(dd.counts),
            "max_boxes": int(dd.max_boxes),
            "with_masks": with_masks,
        }
        kw = {"input_shape": tuple(dd.input_shape), "num_classes": int(dd.num_classes), "class_names": list(dd.class_names)}
        return RunData(dd.train, dd.val, dd.test, kw, config, _steps(dd.counts["train"], opts["batch_size"]),
                       {"test_arrays": dd.test_arrays, "class_names": list(dd.class_names)})

    def report(self, model, run_data, out):
        import time

        from kerasvk.evaluation.detection import coco_evaluate

        arrays = run_data.extras["test_arrays"]
        names = run_data.config["class_names"]
        losses = model.evaluate(run_data.test, verbose=0, return_dict=True)
        model.detect(arrays["images"][:2])  # traced once, so the timing below is inference only
        t0 = time.perf_counter()
        model.detect(arrays["images"])  # the deployed settings (the serving signature's threshold)
        seconds = time.perf_counter() - t0
        # COCO evaluation keeps every detection down to a tiny score (pycocotools ranks them; Ultralytics and
        # Detectron2 validate the same way); the serving threshold would cut off the tail of the PR curve
        det = model.detect(arrays["images"], score_threshold=EVAL_SCORE_THRESHOLD)
        gt = {k: arrays[k] for k in ("boxes", "labels", "masks") if k in arrays}
        report = {f"test_{k}": float(v) for k, v in losses.items()}
        report.update(coco_evaluate(gt, det, names, iou_type="bbox"))
        if "masks" in det and "masks" in gt:
            segm = coco_evaluate(gt, det, names, iou_type="segm")
            report.update({f"segm_{k}": v for k, v in segm.items() if k not in ("num_images", "num_ground_truth")})
        report["inference_images_per_second"] = round(len(arrays["images"]) / max(seconds, 1e-9), 1)
        report["eval_score_threshold"] = EVAL_SCORE_THRESHOLD
        if out is not None:
            from kerasvk import plots

            n = min(16, len(arrays["images"]))
            first = {k: v[:n] for k, v in det.items()}
            plots.detection_grid(arrays["images"][:n], first, names, Path(out) / "plots" / "detections.png",
                                 ground_truth={k: v[:n] for k, v in gt.items()},
                                 title=f"{model.name}: predictions (solid) and ground truth (dashed)")
            if "masks" in first:
                plots.mask_grid(arrays["images"][:n], first, names, Path(out) / "plots" / "masks.png")
        return report

    def predict(self, model, config, files, out, *, top_k=3, num=16, seed=0, prompt=None):
        from kerasvk import plots
        from kerasvk.data.files import read_images

        if not files:
            raise ValueError("kerasvk predict on a detector needs image files: kerasvk predict RUN a.jpg b.png ...")
        images = read_images(files, config["image_size"], 3)
        det = model.detect(images)
        names = config["class_names"]
        lines = []
        for i, f in enumerate(files):
            found = [
                f"{names[int(c)]} {float(s):.2f} [{', '.join(f'{v:.1f}' for v in b)}]"
                for b, s, c in zip(det["boxes"][i], det["scores"][i], det["classes"][i])
            ][: int(det["num_detections"][i])]
            lines.append(f"{f}: " + ("; ".join(found) if found else "no detections"))
        path = plots.detection_grid(images, det, names, Path(out) / "detections.png",
                                    title=f"{model.name} detections (xyxy pixels at {config['image_size']})")
        lines.append(f"wrote {path}")
        return lines


TASK_ADAPTERS = {
    "classification": ClassificationTask(),
    "generative": GenerativeTask(),
    "autoregressive": AutoregressiveTask(),
    "detection": DetectionTask(),
}


def adapter(spec) -> Task:
    """The task adapter of a registered model (ValueError for a task the trainer cannot fit yet)."""
    if spec.task not in TASK_ADAPTERS:
        raise ValueError(
            f"{spec.name} is a {spec.task} model; the trainer fits {', '.join(TASK_ADAPTERS)} models."
        )
    return TASK_ADAPTERS[spec.task]
