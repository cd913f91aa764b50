"""Former home of the cell schema and its validation, kept so existing imports keep working.

The schema (typed dataclasses, :func:`jsweep.schema.from_dict`, :func:`jsweep.schema.cell_from_dict`)
is :mod:`jsweep.schema`, the bottom layer; validation that needs registries and the data layer
(:func:`jsweep.validate.validate_cell`) is :mod:`jsweep.validate`. Import from those in new code.
"""

from __future__ import annotations

from jsweep.schema import (CellSpec, DatasetSpec, DistributedSpec, JudgeSpec, LauncherSpec, LoraSpec, MethodSpec,
                           ModelSpec, PromptSpec, ResourcesSpec, TrackingSpec, TrainSpec, cell_from_dict,
                           choice_problems, from_dict)
from jsweep.validate import EVAL_NUMBERS, eval_option_problems, validate_cell

__all__ = ["CellSpec", "DatasetSpec", "DistributedSpec", "EVAL_NUMBERS", "JudgeSpec", "LauncherSpec", "LoraSpec",
           "MethodSpec", "ModelSpec", "PromptSpec", "ResourcesSpec", "TrackingSpec", "TrainSpec", "cell_from_dict",
           "choice_problems", "eval_option_problems", "from_dict", "validate_cell"]
