"""Sample-quality metrics for generative models: Fréchet distance (FID) and Inception Score (IS).

``fid(real, fake, feature_extractor)`` = ‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2(Σ_r Σ_f)^½), in float64. The
trace of the matrix square root is computed as Tr((Σ_r^½ Σ_f Σ_r^½)^½) — both factors symmetric
positive semi-definite, so two ``eigh`` calls with tiny negative eigenvalues clipped to 0 replace a
general ``sqrtm`` (no complex parts, no NaN from rank-deficient covariances).

``inception_score(probs, splits)`` = exp(E_x[KL(p(y|x) ‖ p(y))]), mean and std over ``splits``.

Feature extractors (callables ``images in [0, 1] → (features, probabilities)``):

- ``ClassifierFeatures(model)``: any trained kerasvk classifier; features are the input of its
  ``predictions`` layer. ``kerasvk.training.feature_classifier.train_feature_classifier("digits")`` trains
  one offline on the same data (evaluation only scores, it trains nothing) — scores computed with it are
  "FID-digits"/"IS-digits": useful to compare runs on that dataset, **not** comparable with published FID
  numbers (which use ImageNet InceptionV3 pool features).
- ``InceptionFeatures()``: keras.applications InceptionV3 (2048-d pool features, 1000-way softmax) for
  online users with ImageNet weights; images are resized to 299×299, grey → RGB.
"""

from __future__ import annotations

import warnings

import numpy as np


def _as_features(x, feature_extractor, name):
    x = np.asarray(x)
    if feature_extractor is not None:
        out = feature_extractor(x)
        x = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)  # (features, probs) extractors
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a (num_samples, feature_dim) array, or images with a feature_extractor. "
            f"Received: {name}.shape={x.shape} and feature_extractor={feature_extractor!r}"
        )
    return x.astype("float64")


def _sqrt_psd(m):
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """Tr((Σ1 Σ2)^½) for symmetric PSD Σ1, Σ2, as Tr((Σ1^½ Σ2 Σ1^½)^½) (real and stable)."""
    s1 = _sqrt_psd(np.asarray(sigma1, "float64"))
    m = s1 @ np.asarray(sigma2, "float64") @ s1
    w = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1 Σ2)^½) between two Gaussians (float64)."""
    mu1, mu2 = np.asarray(mu1, "float64"), np.asarray(mu2, "float64")
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, "float64")), np.atleast_2d(
        np.asarray(sigma2, "float64")
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"Mean/covariance shapes do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}."
        )
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(max(value, 0.0))


def feature_stats(features):
    """(mean, covariance) of a (N, d) feature array in float64."""
    f = np.asarray(features, "float64")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def fid(real, fake, feature_extractor=None) -> float:
    """Fréchet distance between the feature distributions of ``real`` and ``fake``.

    ``real``/``fake``: (N, d) feature arrays, or images when ``feature_extractor`` is given (a callable
    returning features, or a ``ClassifierFeatures``/``InceptionFeatures``). With fewer samples than
    feature dimensions the covariance estimates are singular and the score is biased: a warning says so.
    """
    fr = _as_features(real, feature_extractor, "real")
    ff = _as_features(fake, feature_extractor, "fake")
    if fr.shape[1] != ff.shape[1]:
        raise ValueError(
            f"real and fake features differ in size: {fr.shape[1]} vs {ff.shape[1]}. "
            "Use the same feature extractor for both."
        )
    n, d = min(len(fr), len(ff)), fr.shape[1]
    if n < 2:
        raise ValueError(
            "FID needs at least 2 samples per set to estimate a covariance. "
            f"Received: {len(fr)} real, {len(ff)} fake."
        )
    if n <= d:
        warnings.warn(
            f"FID with {n} samples for {d}-dimensional features: the covariance estimates have "
            f"rank < {d} (singular), "
            f"so the score is biased upwards and noisy. Use more than {d} samples per set "
            "(several times more is better).",
            stacklevel=2,
        )
    if not (np.all(np.isfinite(fr)) and np.all(np.isfinite(ff))):
        raise ValueError("FID features contain NaN or Inf.")
    mu_r, s_r = feature_stats(fr)
    mu_f, s_f = feature_stats(ff)
    return frechet_distance(mu_r, s_r, mu_f, s_f)


def inception_score(probs, splits=1, eps=1e-12):
    """exp(E[KL(p(y|x) ‖ p(y))]) of (N, K) class probabilities → (mean, std) over ``splits`` chunks.

    Ranges from 1 (every sample gets the same prediction) to K (confident predictions spread evenly).
    """
    p = np.asarray(probs, "float64")
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be (num_samples, num_classes >= 2). Received: shape={p.shape}")
    if np.any(p < -1e-6) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "probs rows must be probability distributions (non-negative, summing to 1); apply softmax first."
        )
    if not isinstance(splits, (int, np.integer)) or not 1 <= splits <= len(p):
        raise ValueError(f"splits must be an int in [1, num_samples={len(p)}]. Received: splits={splits!r}")
    p = np.clip(p, 0.0, 1.0)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + eps) - np.log(py + eps)), axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


class ClassifierFeatures:
    """``images → (features, probabilities)`` from a trained kerasvk classifier.

    Features are the input of the classifier's ``predictions`` layer (or of ``feature_layer``).
    ``name`` labels the scores, e.g. "FID-digits".
    """

    def __init__(self, classifier, feature_layer=None, name="FID-custom", batch_size=256):
        import keras

        if feature_layer is None:
            try:
                feats = classifier.get_layer("predictions").input
            except ValueError:
                raise ValueError(
                    "The classifier has no 'predictions' layer; pass feature_layer= (a layer name)."
                ) from None
        else:
            feats = classifier.get_layer(feature_layer).output
        inputs = classifier.inputs[0] if len(classifier.inputs) == 1 else classifier.inputs
        self.model = keras.Model(inputs, [feats, classifier.outputs[0]], name=f"{classifier.name}_features")
        self.input_shape = tuple(classifier.inputs[0].shape[1:])
        self.name, self.batch_size = name, int(batch_size)

    def __call__(self, images):
        images = np.asarray(images, "float32")
        if images.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.name} extractor takes images of shape {self.input_shape}. "
                f"Received: {images.shape[1:]}"
            )
        return self._features(images)

    def _features(self, images):
        """``(features, probabilities)`` in float64, ``batch_size`` images at a time."""
        feats, probs = [], []
        for i in range(0, len(images), self.batch_size):
            f, p = self.model(images[i : i + self.batch_size], training=False)
            feats.append(np.asarray(f))
            probs.append(np.asarray(p))
        return np.concatenate(feats).astype("float64"), np.concatenate(probs).astype("float64")


class InceptionFeatures(ClassifierFeatures):
    """InceptionV3 2048-d pool features and ImageNet probabilities (images in [0, 1], any size, grey or RGB).

    ``weights="imagenet"`` downloads the weights on first use (online users); a local weights file
    path also works. Scores are then the published-style FID/IS (at 299×299).
    """

    def __init__(self, weights="imagenet", batch_size=64):
        import keras

        base = keras.applications.InceptionV3(weights=weights, include_top=True)
        inputs = keras.Input((None, None, None), name="images")
        x = keras.layers.Resizing(299, 299, name="resize_299")(inputs)
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_inception_range")(x)  # [0, 1] → [-1, 1]
        feats_model = keras.Model(base.inputs, [base.get_layer("avg_pool").output, base.output])
        f, p = feats_model(x)
        self.model = keras.Model(inputs, [f, p], name="inception_v3_features")
        self.input_shape = None
        self.name, self.batch_size = "FID-InceptionV3", int(batch_size)

    def __call__(self, images):
        images = np.asarray(images, "float32")
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"Images must be (N, H, W, 1 or 3). Received: shape={images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        return self._features(images)
