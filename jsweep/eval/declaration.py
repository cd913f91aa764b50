"""What an evaluator says about itself, so that no other module names evaluators.

An evaluator is a package (or a module, when small) under ``jsweep/eval/`` that exposes one
:class:`Declaration`; ``jsweep.registries.EVALUATORS`` maps its name to that object in one line.
The declaration is pure data plus "module:attribute" strings imported only when used, so
importing it (planning a sweep, writing a report) imports no torch. From it:

- the sweep summary shows each selected evaluator's headline scores (:func:`summary_metrics`);
- the report tries the headlines in registry order, ranks by their declared direction and draws
  each score's interval as the evaluator says (:func:`lower_is_better`, :func:`interval`);
- the pre-flight runs its ``check``/``files`` and asks for real data (``data_hint``) before any GPU work;
- the contamination check reads the samples it scores (``contamination``).

Adding an evaluator: write ``jsweep/eval/<name>/`` (options, tasks, metrics, logging, a
``Declaration``), ``conf/eval/<name>.yaml``, and one line in ``jsweep.registries.EVALUATORS``.
Modelled on lm-evaluation-harness (a task declares each metric with ``higher_is_better``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def resolve(target: str) -> Any:
    """The object named by "module:attr.attr"."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Headline:
    """A score worth ranking cells by: its full metric name and which way is better.

    ``optional``: shown in the sweep summary only when some cell has it (e.g. a partial average);
    ``summary``: shown in the sweep summary at all (False for scores that arrive after the sweep,
    from the LLM judge or human graders); ``scale``: how to read the number (``0-1``, ``1-5``, ``nats/token``)."""

    metric: str
    higher_is_better: bool = True
    scale: str = ""
    optional: bool = False
    summary: bool = True

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class Declaration:
    """One evaluator. Strings ``"module:attr"`` are imported lazily.

    name            the ``eval=[...]`` name and the metric prefix (``<name>/...``)
    implementation  the evaluator class, built with its options (jsweep.eval.protocols.Evaluator)
    headlines       its headline scores, best first (at least one when ``scores``)
    scores          False for an evaluator that only generates (answers to read), with nothing to rank by
    shared          scored on one evaluation set shared by every cell, so comparable whatever the grid
                    changes (False: each cell's own data, e.g. a held-out split)
    check           pre-flight ``(options) -> [problem]``: options and data present (no model, no torch)
    files           pre-flight ``(options) -> [problem]``, after ``check`` passed: its data files read in full as
                    it will read them (jsweep.filecheck for text files)
    data_hint       ``(option key, how to prepare the data)``: a real model is never scored on the shipped toy
                    fixtures; None when the evaluator has no toy fixtures
    judged          scored by the LLM judge (its config is checked before a sweep runs; after the sweep the
                    judge fills in what is missing)
    graded          answers graded by people after the sweep (``jsweep grade``)
    contamination   ``(options) -> [EvalText]``: the texts it scores, checked against each cell's training data
    contamination_always  checked even for cells that do not select it (with its default options)
    interval        ``(cell, metric, resamples) -> (low, high) | None``: 95% interval of one cell's score
                    (bootstrap over its samples, a standard error...); ``cell`` has ``cell_dir`` and ``metrics``
                    (a jsweep.tools.report.CellResult)
    interval_basis  how that interval is made, for the report
    paired          ``(cell_a, cell_b, metric, resamples) -> (low, high) | None``: 95% interval of the DIFFERENCE
                    score(a) - score(b), resampling the same evaluation items for both cells (a paired
                    bootstrap); None where the cells were not scored on the same items. Two cells scored on one
                    shared set differ far less in noise than their own intervals suggest (most of an interval is
                    which items are hard, common to both), so the report tests a winner with this where it exists
    task_metrics    ``(metric names) -> [names]``: its per-task scores for the report's task table
    judge           ``(cell_dir, judge_options, *, log_metrics, tracker, say) -> metrics``: judge a finished cell's saved
                    answers (``jsweep judge``, and after a sweep); for ``judged`` evaluators. A re-judged cell logs
                    ``<name>/judged``, and its old ``<name>/.../score`` keys that were not logged again are dropped
    report_section  ``(sweep_dir, cells, label) -> [lines]``: its own Markdown section of the sweep report, from
                    the cells' local files (``cells``: [(summary row, cell_dir)], ``label``: cell id -> label)
    numbers         integer options checked in pre-flight: ``key -> (lowest value, other values allowed)``;
                    ``key.*`` checks every value of a mapping option (one line per bad value, before any cell)
    choices         options with a fixed set of values: ``key -> allowed values``
    """

    name: str
    implementation: str
    headlines: tuple[Headline, ...] = ()
    scores: bool = True
    shared: bool = True
    check: str | None = None
    files: str | None = None
    data_hint: tuple[str, str] | None = None
    judged: bool = False
    graded: bool = False
    contamination: str | None = None
    contamination_always: bool = False
    interval: str | None = None
    interval_basis: str = ""
    paired: str | None = None
    task_metrics: str | None = None
    judge: str | None = None
    report_section: str | None = None
    numbers: Mapping[str, tuple[int, tuple[Any, ...]]] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scores and not self.headlines:
            raise ValueError(f"evaluator '{self.name}' declares no headline metric (or scores=False)")
        if self.judged and not self.judge:
            raise ValueError(f"evaluator '{self.name}' is judged but declares no judge hook")
        for h in self.headlines:
            if not h.metric.startswith(self.prefix):
                raise ValueError(f"evaluator '{self.name}': headline '{h.metric}' is not under '{self.prefix}'")

    @property
    def prefix(self) -> str:
        return f"{self.name}/"

    def build(self, options: Mapping[str, Any] | None) -> Any:
        """The evaluator, built with its ``eval.<name>`` options (imports its implementation)."""
        return resolve(self.implementation)(dict(options or {}))

    __call__ = build

    def hook(self, attr: str) -> Callable[..., Any] | None:
        target = getattr(self, attr)
        return resolve(target) if target else None

    def required_hook(self, attr: str) -> Callable[..., Any]:
        """The hook ``attr``, which the caller knows is declared (ValueError naming it otherwise)."""
        fn = self.hook(attr)
        if fn is None:
            raise ValueError(f"evaluator '{self.name}' declares no {attr} hook")
        return fn

    def headline(self, metric: str) -> Headline | None:
        return next((h for h in self.headlines if h.metric == metric), None)


# --------------------------------------------------------------------------- reading the registry


def declarations() -> list[Declaration]:
    """Every registered evaluator's declaration, in registry order (the order the report tries headlines)."""
    from jsweep import registries

    return [registries.EVALUATORS.get(name) for name in registries.EVALUATORS.in_order()]


def declaration(name: str) -> Declaration:
    from jsweep import registries

    return registries.EVALUATORS.get(name)


def owner(metric: str) -> Declaration | None:
    """The evaluator whose namespace ``metric`` is in."""
    return next((d for d in declarations() if metric.startswith(d.prefix)), None)


def headlines() -> list[Headline]:
    return [h for d in declarations() for h in d.headlines]


def headline(metric: str) -> Headline | None:
    return next((h for h in headlines() if h.metric == metric), None)


def lower_is_better(metric: str) -> bool:
    """A declared headline's direction; other metrics (losses, seconds, memory) by their name."""
    declared = headline(metric)
    if declared is not None:
        return not declared.higher_is_better
    return metric.endswith(("loss", "_seconds", "memory_gb"))


def shared_prefixes() -> tuple[str, ...]:
    """Metric namespaces measured on one evaluation set shared by every cell."""
    return tuple(d.prefix for d in declarations() if d.shared)


def summary_metrics(selected: list[str], present: set[str]) -> list[str]:
    """The headline columns of a sweep summary: each selected evaluator's headlines, in registry order
    (optional ones only when some cell has them)."""
    out = []
    for d in declarations():
        if d.name in selected:
            out += [h.metric for h in d.headlines if h.summary and (not h.optional or h.metric in present)]
    return out


def interval(cell: Any, metric: str, resamples: int) -> tuple[Declaration, tuple[float, float]] | None:
    """The owning evaluator's 95% interval for one cell's ``metric``, with the declaration (for its basis)."""
    d = owner(metric)
    fn = d.hook("interval") if d else None
    if d is None or fn is None:
        return None
    ci = fn(cell, metric, resamples)
    return (d, ci) if ci is not None else None


def paired_interval(a: Any, b: Any, metric: str, resamples: int) -> tuple[float, float] | None:
    """The owning evaluator's 95% paired interval of ``score(a) - score(b)`` (same items resampled for
    both cells), or None where it declares none or the cells were not scored on the same items."""
    d = owner(metric)
    fn = d.hook("paired") if d else None
    if d is None or fn is None or resamples <= 0:
        return None
    return fn(a, b, metric, resamples)
