"""What an evaluator is. Its Declaration (jsweep.eval.declaration) is registered in jsweep.registries."""

from __future__ import annotations

from typing import Any, Protocol


class Evaluator(Protocol):
    """Built with the options of its ``eval.<name>`` config node; scores a model in memory.

    ``evaluate`` returns flat metrics named ``<evaluator>/<...>`` (e.g. ``llm_jp_eval/AVG``);
    it may also log artifacts (predictions) through ``ctx.tracker`` and write files under
    ``ctx.cell_dir``. ``ctx`` is a :class:`jsweep.job.context.CellContext` (or the same shape
    from ``jsweep eval``), ``model`` a transformers causal LM (PEFT-wrapped for LoRA cells).
    """

    def __init__(self, options: dict[str, Any]) -> None: ...

    def evaluate(self, ctx: Any, model: Any, tokenizer: Any) -> dict[str, float]: ...
