"""``--precision float32|mixed_float16|mixed_bfloat16`` and ``--jit-compile`` (``kerasvk train``, recipes).

The checks and the policy are the trainer's (:func:`~kerasvk.training.trainer.check_precision`,
:func:`~kerasvk.training.trainer.precision_policy`); this module gives them the shape ``--strategy`` has in
:mod:`kerasvk.training.strategy`: :func:`add_speed_arguments` on a parser, :func:`recipe_speed` to resolve
the parsed choice (one line, exit code 2 when refused), and a :class:`RecipeSpeed` whose ``.policy()``
block a recipe builds and compiles its models in.

* **Precision.** Models built inside ``.policy()`` compute in half precision with float32 variables; the
  library's builders keep every model's outputs (and so its losses) float32. Under ``mixed_float16``
  keras' ``compile`` wraps the optimizer in a ``LossScaleOptimizer`` for a model built in the block (the
  GAN wraps its own two). ``mixed_float16`` needs a GPU with float16 tensor cores: elsewhere it is refused
  before any work.
* **XLA.** ``--jit-compile`` gives ``compile`` ``jit_compile=True`` (:attr:`RecipeSpeed.compile_kwargs`;
  without it keras' own default, ``"auto"``: off on CPU). keras silently trains without XLA while TF's op
  determinism is on, so :func:`recipe_speed` switches it off; :meth:`RecipeSpeed.check` turns keras' other
  silent fallback (a layer without an XLA kernel) into an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasvk.training.strategy import recipe_error
from kerasvk.training.trainer import (
    PRECISIONS,
    check_jit_compiled,
    check_precision,
    precision_policy,
    set_op_determinism,
)


def add_speed_arguments(parser) -> None:
    """``--precision`` and ``--jit-compile`` on an argparse parser (``kerasvk train`` and every recipe)."""
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="keras dtype policy; outputs and losses stay float32 (mixed_float16 needs a "
                             "GPU: on CPU use mixed_bfloat16)")
    parser.add_argument("--jit-compile", action="store_true", default=None,
                        help="XLA-compile the train step (default: keras' choice, off on CPU)")


@dataclass(frozen=True)
class RecipeSpeed:
    """``--precision``/``--jit-compile`` for a recipe (see :func:`recipe_speed`)."""

    precision: str = "float32"
    jit_compile: bool | None = None  # True: XLA; None: keras' default ("auto")

    def policy(self):
        """Build (and compile) models inside this block; the previous dtype policy is restored after."""
        return precision_policy(self.precision)

    @property
    def compile_kwargs(self) -> dict:
        """Keywords for ``compile``: ``jit_compile=True`` with ``--jit-compile``, else none (keras' own)."""
        return {"jit_compile": True} if self.jit_compile else {}

    @property
    def train_kwargs(self) -> dict:
        """Keywords for ``kerasvk.training.train`` (which records both in run.json)."""
        return {"precision": self.precision, "jit_compile": self.jit_compile}

    def check(self, model):
        """After ``compile``: ``ValueError`` where ``--jit-compile`` was asked for and keras fell back to no
        XLA. Returns ``model``."""
        if self.jit_compile:
            check_jit_compiled(model)
        return model

    def record(self, model) -> dict:
        """``{"precision", "jit_compile"}`` for a recipe's metrics JSON, ``jit_compile`` as the compiled
        ``model`` has it (keras' ``"auto"`` resolved), as ``kerasvk train`` records them in run.json."""
        return {"precision": self.precision, "jit_compile": bool(model.jit_compile)}

    def describe(self) -> str:
        """The choice in words, for a recipe that prints its results and writes no file."""
        return f"precision {self.precision}, jit_compile {'True' if self.jit_compile else 'auto'}"


NO_SPEED = RecipeSpeed()  # a recipe's functions called without --precision/--jit-compile


def recipe_speed(parser, args) -> RecipeSpeed:
    """Resolve ``args.precision``/``args.jit_compile`` (from :func:`add_speed_arguments`) for a recipe.

    Every recipe runs every policy and XLA (what the library builds keeps float32 outputs, and none has a
    layer without an XLA kernel); ``mixed_float16`` without a float16 GPU prints one line (``PROG: error:
    ...``) and exits with code 2, before anything is loaded or built. Call it before
    :func:`~kerasvk.training.strategy.recipe_strategy` (which may start a multi-worker strategy).
    """
    precision = args.precision or "float32"
    try:
        check_precision(precision)
    except ValueError as e:
        recipe_error(parser, e)
    if args.jit_compile:
        set_op_determinism(False)  # else keras trains without XLA (its model_supports_jit)
    return RecipeSpeed(precision, True if args.jit_compile else None)
