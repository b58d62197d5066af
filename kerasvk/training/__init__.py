"""Training: the one trainer (``train``) and its task adapters, and (in submodules) schedules, callbacks,
regularization, transfer learning, domain adaptation, distillation and ensembles."""

from kerasvk.training.losses import classification_loss_and_metrics
from kerasvk.training.tasks import evaluate_classifier
from kerasvk.training.trainer import (
    OPTIMIZERS,
    TRAIN_DEFAULTS,
    default_callbacks,
    evaluate_run,
    export_run,
    load_run_model,
    make_optimizer,
    predict_run,
    read_run,
    resolve_train_options,
    set_seed,
    train,
)

evaluate_model = evaluate_classifier  # the name this had before the trainer served every task

__all__ = [
    "OPTIMIZERS",
    "TRAIN_DEFAULTS",
    "train",
    "evaluate_run",
    "evaluate_model",
    "evaluate_classifier",
    "export_run",
    "predict_run",
    "read_run",
    "load_run_model",
    "make_optimizer",
    "resolve_train_options",
    "set_seed",
    "default_callbacks",
    "classification_loss_and_metrics",
]

# Transfer learning, domain adaptation, distillation, ensembles: loaded on first use (they import keras).
_LAZY = {
    "transfer_classifier": "transfer", "make_encoder": "transfer", "fine_tune": "transfer",
    "freeze_encoder": "transfer", "apply_l2sp": "transfer", "L2SP": "transfer",
    "DANN": "domain_adaptation", "build_dann": "domain_adaptation", "fit_dann": "domain_adaptation",
    "dann_lambda": "domain_adaptation", "digits_encoder": "domain_adaptation",
    "distill": "distillation", "make_distiller": "distillation", "distillation_loss": "distillation",
    "to_logits": "distillation", "to_probabilities": "distillation",
    "make_schedule": "schedules", "schedule_callback": "schedules", "LinearWarmup": "schedules",
    "LearningRateLogger": "schedules", "reduce_on_plateau": "schedules", "plot_schedule": "schedules",
    "parse_schedule": "schedules", "SCHEDULES": "schedules",
    "TimeBudget": "callbacks", "SampleGridCallback": "callbacks", "train_feature_classifier": "feature_classifier",
    "apply_weight_regularization": "regularization", "regularization_loss": "regularization",
    "set_dropout": "regularization", "configure_batch_norm": "regularization",
}  # ensemble(): kerasvk.training.ensemble.ensemble (the submodule's name would shadow a lazy alias)
__all__ += list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kerasvk.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kerasvk.training' has no attribute {name!r}")
