"""Train the classifier behind offline FID/IS ("FID-digits"): evaluation scores, training trains.

``train_feature_classifier("digits")`` fits a small kerasvk classifier (LeNet-5 by default) on the same
data the generator learns and wraps it as ``kerasvk.evaluation.generative.ClassifierFeatures``. Scores
computed with it compare runs on that dataset only; they are not comparable with published FID numbers
(ImageNet InceptionV3 features: ``InceptionFeatures``).
"""

from __future__ import annotations

__all__ = ["train_feature_classifier"]


def train_feature_classifier(
    source="digits", *, image_size=(32, 32), model="lenet5", epochs=30, batch_size=64, seed=0, verbose=0
):
    """Train a kerasvk classifier on ``source`` for offline FID/IS → (ClassifierFeatures, test accuracy).

    The extractor is named "FID-<source>"; its scores compare runs on that dataset only.
    """
    import keras

    from kerasvk.data import load
    from kerasvk.evaluation.generative import ClassifierFeatures
    from kerasvk.registry import build

    keras.utils.set_random_seed(seed)
    data = load(source, image_size=image_size, batch_size=batch_size, seed=seed)
    clf = build(model, input_shape=data.input_shape, num_classes=data.num_classes)
    clf.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    from kerasvk.training.trainer import build_optimizer

    build_optimizer(clf)  # the first train step is traced once, not twice
    clf.fit(data.train, validation_data=data.val, epochs=epochs, verbose=verbose)
    acc = float(clf.evaluate(data.test, verbose=0, return_dict=True)["accuracy"])
    name = source.split(":")[0] if isinstance(source, str) else "arrays"
    return ClassifierFeatures(clf, name=f"FID-{name}"), acc
