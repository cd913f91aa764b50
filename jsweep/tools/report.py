"""``jsweep report [PATH]``: compare the cells of a sweep, in tables and plots.

PATH is a sweep directory (``outputs/sweeps/<time>/``, holding ``summary.json``) or an output root,
whose newest sweep is taken; the default is ``outputs``. The report goes to ``<sweep dir>/report/``:

- ``report.md``: the conditions (cells, with their ``seed`` replicates pooled) ranked by a score
  that is comparable across them, each with a 95% interval; a winner only where its interval does
  not overlap the runner-up's; for each axis of the grid, the mean and interval of each of its
  values ("which data / method / lr helped"); per-task scores;
- ``conditions.json``: each condition's mean, interval and replicates (logged to the parent run);
- ``cells.csv``: one row per cell (axes, status, every metric), for spreadsheets;
- ``scores.png``: the score of every cell, or a heat map when the grid has two axes;
- ``axes.png``: the score against each axis' values, one panel per axis;
- ``tasks.png``: per-task scores of every cell (llm-jp-eval categories, JGLUE tasks);
- ``loss.png``: training (and held-out) loss curves, from each cell's ``history.jsonl``.

It reads only the sweep's local files, so it works offline and while the tracking server is down.
A sweep writes its report when it ends and logs it to its MLflow parent run (``launcher.report``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.errors import JsweepError
from jsweep.eval.declaration import declarations, headlines
from jsweep.eval.declaration import interval as declared_interval
from jsweep.eval.declaration import lower_is_better as declared_lower_is_better
from jsweep.eval.declaration import paired_interval as declared_paired_interval
from jsweep.eval.declaration import shared_prefixes as declared_shared_prefixes

# Scores tried in order when --metric is not given: the first comparable one on which the cells differ.
# Each evaluator's declared headlines (jsweep.eval.declaration, in registry order), then the cells' own losses.
OWN_METRICS = ("eval/loss", "train/final_loss")


def default_metrics() -> tuple[str, ...]:
    return tuple(h.metric for h in headlines()) + OWN_METRICS


def shared_prefixes() -> tuple[str, ...]:
    """Scores measured on one evaluation set shared by every cell (the evaluators that say so): comparable
    whatever the grid varies."""
    return declared_shared_prefixes()


# Axes that change the data a cell is trained and held out on: with one of them in the grid, a loss on
# each cell's own held-out split (eval/loss) or training data compares different data, not models.
DATA_AXES = ("dataset", "data_source", "data_seed", "train.eval_fraction")
# Axes whose values are replicates of one condition, pooled as mean ± interval (not compared).
REPLICATE_AXES = ("seed",)
# Columns shown beside the score in the cells table, where cells have them.
SIDE_COLUMNS = (
    "eval/loss",
    "train/final_loss",
    "train/tokens_per_second_per_gpu",
    "train/mfu",
    "gpu/peak_memory_gb",
    "time/total_seconds",
)
BOOTSTRAP = 200  # bootstrap resamples of a cell's evaluation samples (0 = no per-cell intervals)
# Two-sided 95% t quantiles by degrees of freedom (replicate intervals); 1.96 beyond 30.
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


class ReportError(JsweepError):
    """No sweep to report on, or a metric no cell has."""


@dataclass
class CellResult:
    index: int
    cell_id: str
    label: str
    status: str
    axes: dict[str, str]
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # metrics that are NaN or infinite (kept out of rankings)
    cell_dir: Path | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95% interval per score (samples)
    interval_basis: dict[str, str] = field(default_factory=dict)  # how each was made (the evaluator says)
    resamples: int = BOOTSTRAP  # bootstrap resamples behind its intervals (and paired differences)

    def value(self, axis: str) -> str:
        """This cell's value of a grid axis; "(default)" where its overrides do not set it."""
        return self.axes.get(axis, "(default)")

    def where(self, axes: list[str]) -> list[str]:
        """The cell's values of ``axes``, or its label when the grid has no axes."""
        return [self.value(a) for a in axes] if axes else [self.label]


# --------------------------------------------------------------------------- reading a sweep


def find_sweep(path: Path) -> Path:
    """The sweep directory at ``path``, or the newest one under an output root."""
    path = Path(path)
    if (path / "summary.json").exists():
        return path
    found = (
        sorted((path / "sweeps").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
        if (path / "sweeps").is_dir()
        else []
    )
    if not found:
        raise ReportError(
            f"no sweep found at {path} (expected a sweep directory with summary.json, "
            f"or an output root with sweeps/*/summary.json)"
        )
    return found[-1].parent


def read_history(path: Path) -> list[dict[str, Any]]:
    """history.jsonl as one row per step. Rows of one attempt at a step (train and held-out metrics)
    are merged; a later attempt that logs a step again (a resume repeats the steps after its
    checkpoint) replaces what earlier attempts logged there."""
    if not path.exists():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
        if not isinstance(row, dict) or "step" not in row:
            continue
        step = int(row["step"])
        if step in by_step and by_step[step].get("attempt") == row.get("attempt"):
            by_step[step].update(row)
        else:
            by_step[step] = dict(row)
    return [by_step[s] for s in sorted(by_step)]


def axes_of(overrides: list[str]) -> dict[str, str]:
    return dict(o.partition("=")[::2] for o in overrides if "=" in o)


def load_sweep(sweep_dir: Path) -> list[CellResult]:
    summary = json.loads((sweep_dir / "summary.json").read_text(encoding="utf-8"))
    cells = []
    for row in summary.get("cells", []):
        cell_dir = Path(row["log"]).parent
        overrides = row.get("overrides")
        if overrides is None:  # summaries written before overrides were recorded
            meta_path = cell_dir / cellstate.CELL
            meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
            overrides = meta.get("spec", {}).get("overrides") or []
        values = {k: float(v) for k, v in (row.get("metrics") or {}).items() if isinstance(v, (int, float))}
        cells.append(
            CellResult(
                row["index"],
                row["cell_id"],
                row["label"],
                row["status"],
                axes_of(overrides),
                {k: v for k, v in values.items() if math.isfinite(v)},
                read_history(cell_dir / "history.jsonl"),
                sorted(k for k, v in values.items() if not math.isfinite(v)),
                cell_dir,
            )
        )
    return cells


# --------------------------------------------------------------------------- analysis


def comparable(metric: str, axes: list[str]) -> bool:
    """Whether ``metric`` compares the cells of a grid over ``axes``: a score on one shared evaluation
    set always does; a loss on each cell's own data only when no axis changes the data."""
    if metric.startswith(shared_prefixes()):
        return True
    return not any(a.split("@")[0].split(".")[0] in DATA_AXES or a in DATA_AXES for a in axes)


def pick_metric(cells: list[CellResult], requested: str | None, axes: list[str] | None = None) -> str:
    """The score to rank by: ``requested``, else the first comparable default on which the cells differ,
    else the first comparable one present (every cell ties on it), else the first present at all (then
    the report does not rank: see :func:`comparable`)."""
    have = {k for c in cells for k in c.metrics}
    if requested:
        if requested not in have:
            close = sorted(k for k in have if requested.split("/")[-1].lower() in k.lower())[:8]
            raise ReportError(
                f"no cell has metric '{requested}'" + (f" (similar: {', '.join(close)})" if close else "")
            )
        return requested
    axes = varying_axes(cells) if axes is None else axes
    defaults = default_metrics()
    present = [k for k in defaults if k in have]
    fair = [k for k in present if comparable(k, axes)]
    for key in fair:
        if len({c.metrics[key] for c in cells if key in c.metrics}) > 1:
            return key
    if fair:
        return fair[0]
    if present:
        return present[0]
    raise ReportError("no cell has a score to compare (" + ", ".join(defaults) + ")")


def grid_axes(axes: list[str]) -> list[str]:
    return [a for a in axes if a not in REPLICATE_AXES]


def replicate_axes(axes: list[str]) -> list[str]:
    return [a for a in axes if a in REPLICATE_AXES]


def mean_interval(xs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval of replicate values (the interval is the mean itself for one value)."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, m, m
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    df = n - 1
    t = T95.get(df) or (1.96 if df > 30 else T95[max(k for k in T95 if k <= df)])
    half = t * sd / math.sqrt(n)
    return m, m - half, m + half


def add_intervals(cells: list[CellResult], metric: str, resamples: int = BOOTSTRAP) -> None:
    for c in cells:
        c.resamples = resamples
        if metric not in c.metrics:
            continue
        found = declared_interval(c, metric, resamples)  # as the metric's evaluator declares it
        if found is not None:
            declared, c.intervals[metric] = found
            c.interval_basis[metric] = declared.interval_basis


@dataclass
class Condition:
    """One point of the grid: its cells are replicates (values of the replicate axes, e.g. seed)."""

    where: list[str]
    cells: list[CellResult]
    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    basis: str = ""  # how the interval was made: replicates, bootstrap, stderr, none

    @property
    def n(self) -> int:
        return len(self.cells)


def conditions(cells: list[CellResult], metric: str, axes: list[str]) -> list[Condition]:
    """Cells grouped by their grid-axis values (replicate axes pooled), with mean and 95% interval:
    over replicates when there are 2+, else the single cell's sampling interval (bootstrap over its
    evaluation samples, or the harness's standard error), else none."""
    groups: dict[tuple[str, ...], Condition] = {}
    for c in cells:
        key = tuple(c.where(grid_axes(axes)))
        groups.setdefault(key, Condition(list(key), [])).cells.append(c)
    for cond in groups.values():
        xs = [c.metrics[metric] for c in cond.cells if metric in c.metrics]
        if not xs:
            continue
        cond.mean, cond.low, cond.high = mean_interval(xs)
        cond.basis = f"{len(xs)} replicates" if len(xs) > 1 else "none"
        if len(xs) == 1:
            only = next(c for c in cond.cells if metric in c.metrics)
            if metric in only.intervals:
                cond.low, cond.high = only.intervals[metric]
                cond.basis = only.interval_basis.get(metric) or "bootstrap over samples"
    return list(groups.values())


def ranked_conditions(conds: list[Condition], metric: str) -> list[Condition]:
    sign = 1 if lower_is_better(metric) else -1
    return sorted(conds, key=lambda c: (math.isnan(c.mean), sign * (0.0 if math.isnan(c.mean) else c.mean)))


def paired_difference(a: Condition, b: Condition, metric: str) -> tuple[float, float] | None:
    """95% interval of ``a - b`` from a paired bootstrap over the evaluation items both were scored on,
    where each condition is one cell and its evaluator declares one (e.g. heldout); else None."""
    if a.n != 1 or b.n != 1:
        return None
    ca, cb = a.cells[0], b.cells[0]
    if metric not in ca.metrics or metric not in cb.metrics:
        return None
    return declared_paired_interval(ca, cb, metric, min(ca.resamples, cb.resamples))


def winner(conds: list[Condition], metric: str) -> tuple[Condition | None, str]:
    """The best condition when it is resolved from the runner-up: the paired interval of their difference
    excludes 0 (both scored on the same items: :func:`paired_difference`), else its own interval clears
    the runner-up's; None and why not otherwise."""
    scored = [c for c in ranked_conditions(conds, metric) if not math.isnan(c.mean)]
    if len(scored) < 2:
        return None, "one condition: nothing to compare"
    best, second = scored[0], scored[1]
    if best.mean == second.mean:
        return None, f"{best.mean:.4g} ties with the next"
    if best.basis == "none" or second.basis == "none":
        return None, "no interval for these scores (add replicates: seed=0,1,2)"
    paired = paired_difference(best, second, metric)
    if paired is not None:
        low, high = paired
        gap = f"{best.mean - second.mean:+.4f} [{low:+.4f}, {high:+.4f}] against the runner-up, paired over the same items"
        clear = high < 0 if lower_is_better(metric) else low > 0
        return (best, f"{gap}: excludes 0") if clear else (None, f"{gap}: includes 0")
    clear = best.high < second.low if lower_is_better(metric) else best.low > second.high
    if not clear:
        return None, "the intervals of the two best overlap"
    return best, "its interval clears the runner-up's"


def lower_is_better(metric: str) -> bool:
    """The declared direction of an evaluator's headline; losses, seconds and memory are lower-better."""
    return declared_lower_is_better(metric)


def varying_axes(cells: list[CellResult]) -> list[str]:
    """Override keys whose value differs between cells, in the order they first appear."""
    keys: list[str] = []
    for c in cells:
        keys += [k for k in c.axes if k not in keys]
    return [k for k in keys if len({c.value(k) for c in cells}) > 1]


def ranked(cells: list[CellResult], metric: str) -> list[CellResult]:
    sign = 1 if lower_is_better(metric) else -1
    return sorted(cells, key=lambda c: (metric not in c.metrics, sign * c.metrics.get(metric, 0.0), c.index))


def by_axis(cells: list[CellResult], axis: str, metric: str) -> list[dict[str, Any]]:
    """Per value of ``axis``: cells, mean, 95% interval of the mean (over its cells), best and worst
    score (cells without the score are left out). ``clear`` marks the one value whose interval lies
    wholly on the better side of every other value's; none when intervals overlap."""
    groups: dict[str, list[float]] = {}
    for c in cells:
        groups.setdefault(c.value(axis), [])
        if metric in c.metrics:
            groups[c.value(axis)].append(c.metrics[metric])
    best = min if lower_is_better(metric) else max
    worst = max if lower_is_better(metric) else min
    out: list[dict[str, Any]] = []
    for v, xs in groups.items():
        m, lo, hi = mean_interval(xs) if xs else (math.nan, math.nan, math.nan)
        out.append(
            {
                "value": v,
                "n": len(xs),
                "mean": m,
                "low": lo,
                "high": hi,
                "best": best(xs) if xs else math.nan,
                "worst": worst(xs) if xs else math.nan,
                "clear": False,
            }
        )
    scored = [g for g in out if g["n"] >= 2]
    if len(scored) >= 2 and len(scored) == len([g for g in out if g["n"]]):
        top = best(scored, key=lambda g: g["mean"])
        others = [g for g in scored if g is not top]
        if lower_is_better(metric):
            top["clear"] = all(top["high"] < g["low"] for g in others)
        else:
            top["clear"] = all(top["low"] > g["high"] for g in others)
    return out


def task_metrics(cells: list[CellResult]) -> list[str]:
    """Per-task scores as each evaluator declares them (llm-jp-eval categories, JGLUE task metrics...)."""
    keys = {k for c in cells for k in c.metrics}
    out: list[str] = []
    for d in declarations():
        pick = d.hook("task_metrics")
        if pick is not None:
            out += pick(keys)
    return out


# --------------------------------------------------------------------------- writing


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.4f}"


def _cell(c: CellResult, key: str) -> str:
    return "nan (diverged)" if key in c.diverged else _fmt(c.metrics.get(key))


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _gap(cond: Condition, top: Condition | None, ci: tuple[float, float] | None) -> str:
    if top is None or cond is top or math.isnan(cond.mean) or math.isnan(top.mean):
        return "-"
    if ci is None:
        return f"{cond.mean - top.mean:+.4f}"
    mark = "*" if ci[0] > 0 or ci[1] < 0 else ""
    return f"{cond.mean - top.mean:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]{mark}"


def _ci(low: float, high: float) -> str:
    return "-" if math.isnan(low) or low == high else f"[{_fmt(low)}, {_fmt(high)}]"


def markdown(sweep_dir: Path, cells: list[CellResult], metric: str, axes: list[str], plots: list[str]) -> str:
    direction = "lower is better" if lower_is_better(metric) else "higher is better"
    done = sum(c.status in ("FINISHED", "SKIPPED") for c in cells)
    grid, reps = grid_axes(axes), replicate_axes(axes)
    fair = comparable(metric, axes)
    conds = conditions(cells, metric, axes)
    lines = [
        f"# Sweep report: {sweep_dir.name}",
        "",
        f"{len(cells)} cell(s), {done} finished. Score: `{metric}` ({direction}).",
        "",
    ]
    if reps:
        lines += [
            f"Replicates: {', '.join(f'`{r}`' for r in reps)} ({max(c.n for c in conds)} per condition); "
            f"each condition's score is their mean, with a 95% t interval.",
            "",
        ]
    bases = "; ".join(f"{d.name}: {d.interval_basis}" for d in declarations() if d.interval)
    lines += [
        "Intervals are 95%: over replicates where a condition has several, else the cell's own interval "
        f"as its evaluator makes it ({bases}).",
        "",
    ]
    if not fair:
        lines += [
            f"**Not ranked:** `{metric}` is measured on each cell's own data, and this grid changes the data "
            f"({', '.join(a for a in axes if not comparable('x', [a]))}), so it does not compare the cells. "
            f"Add a shared benchmark ({', '.join(f'eval=[{d.name}]' for d in declarations() if d.data_hint)}).",
            "",
        ]
    values = {c.metrics[metric] for c in cells if metric in c.metrics}
    if fair and len(values) == 1 and len(cells) > 1:
        lines += [
            f"**All cells tie:** every cell scores {_fmt(next(iter(values)))} on `{metric}`; nothing is ranked.",
            "",
        ]
    side = [k for k in SIDE_COLUMNS if k != metric and any(k in c.metrics for c in cells)]
    names = grid or ["cell"]
    best, why = winner(conds, metric) if fair else (None, "not comparable")
    if fair and len(values) > 1:
        lines += [
            f"**Best: {' '.join(best.where) or best.cells[0].label}** ({why})."
            if best
            else f"**No clear winner:** {why}.",
            "",
        ]
    rows = []
    order = ranked_conditions(conds, metric) if fair else sorted(conds, key=lambda c: min(x.index for x in c.cells))
    top = order[0] if fair and order else None
    gaps = {id(c): paired_difference(c, top, metric) for c in order[1:]} if top is not None else {}
    paired = any(v is not None for v in gaps.values())
    for rank, cond in enumerate(order, 1):
        first = cond.cells[0]
        status = ",".join(sorted({c.status for c in cond.cells}))
        score = (
            "nan (diverged)"
            if math.isnan(cond.mean) and any(metric in c.diverged for c in cond.cells)
            else _fmt(cond.mean)
        )
        if cond is best:
            score = f"**{score}**"
        where = cond.where if grid else [first.label]
        rows.append(
            [
                str(rank) if fair else "-",
                ",".join(c.cell_id[:8] for c in cond.cells),
                *where,
                str(cond.n),
                status,
                score,
                _ci(cond.low, cond.high),
                *([_gap(cond, top, gaps.get(id(cond)))] if paired else []),
                *(
                    _fmt(
                        sum(c.metrics[k] for c in cond.cells if k in c.metrics)
                        / max(1, sum(k in c.metrics for c in cond.cells))
                    )
                    if any(k in c.metrics for c in cond.cells)
                    else "-"
                    for k in side
                ),
            ]
        )
    lines += ["## Conditions, best first" if fair else "## Cells (not ranked)", ""]
    gap_col = ["vs #1 (paired 95%)"] if paired else []
    lines += [
        *_md_table(["#", "cell", *names, "replicates", "status", f"{metric}", "95% interval", *gap_col, *side], rows),
        "",
    ]
    if paired:
        lines += [
            "`vs #1`: the difference from the first condition with its 95% interval from a paired bootstrap "
            "(the same evaluation items resampled for both cells, so the items' own difficulty, shared by every "
            "cell, cancels out); a difference whose interval excludes 0 is resolved (marked *).",
            "",
        ]
    bad = [c for c in cells if metric in c.diverged]
    if bad:
        lines += [
            f"Diverged (`{metric}` is NaN or infinite; ranked last, left out of the means): "
            + ", ".join(f"`{c.cell_id[:8]}` {c.label}" for c in bad),
            "",
        ]
    for axis in grid if fair else []:
        groups = by_axis(cells, axis, metric)
        lines += [f"## By `{axis}`", ""]
        lines += [
            *_md_table(
                [axis, "cells", f"mean {metric}", "95% interval", "best", "worst"],
                [
                    [
                        f"**{g['value']}**" if g["clear"] else g["value"],
                        str(g["n"]),
                        _fmt(g["mean"]),
                        _ci(g["low"], g["high"]),
                        _fmt(g["best"]),
                        _fmt(g["worst"]),
                    ]
                    for g in groups
                ],
            ),
            "",
        ]
        if not any(g["clear"] for g in groups):
            lines += [f"No value of `{axis}` is marked: their intervals overlap (or too few cells to tell).", ""]
    tasks = task_metrics(cells)
    if tasks:
        lines += ["## Per task", ""]
        lines += [
            *_md_table(
                ["cell", *(axes or ["cell"]), *tasks],
                [
                    [c.cell_id[:8], *c.where(axes), *(_fmt(c.metrics.get(k)) for k in tasks)]
                    for c in ranked(cells, metric)
                ],
            ),
            "",
        ]
    failed = [c for c in cells if c.status not in ("FINISHED", "SKIPPED")]
    if failed:
        lines += ["## Not finished", ""] + [f"- `{c.cell_id[:8]}` {c.label}: {c.status}" for c in failed] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def parent_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The parent run's view of the sweep: per condition, the score's mean, interval and replicates,
    as ``summary/<axis values>/<metric>/mean|ci_low|ci_high|replicates`` (names MLflow accepts)."""
    import re

    out: dict[str, float] = {}
    metric = summary["metric"]
    for cond in summary["conditions"]:
        slug = re.sub(r"[^\w.\- /]", "_", " ".join(f"{k}_{v}" for k, v in cond["where"].items()))[:200]
        base = f"summary/{slug}/{metric}"
        for key, name in (("mean", "mean"), ("low", "ci_low"), ("high", "ci_high")):
            if cond[key] is not None:
                out[f"{base}/{name}"] = float(cond[key])
        out[f"{base}/replicates"] = float(cond["n"])
    return out


def conditions_json(cells: list[CellResult], metric: str, axes: list[str]) -> dict[str, Any]:
    """What the parent run logs: each condition's mean, interval and replicate values."""
    fair = comparable(metric, axes)
    conds = conditions(cells, metric, axes)
    best, why = winner(conds, metric) if fair else (None, "not comparable")
    return {
        "metric": metric,
        "comparable": fair,
        "axes": grid_axes(axes),
        "replicate_axes": replicate_axes(axes),
        "winner": (" ".join(best.where) if best else None),
        "why": why,
        "conditions": [
            {
                "where": dict(zip(grid_axes(axes), c.where)) if grid_axes(axes) else {"cell": c.cells[0].label},
                "label": " ".join(c.where) if grid_axes(axes) else c.cells[0].label,
                "n": c.n,
                "mean": None if math.isnan(c.mean) else c.mean,
                "low": None if math.isnan(c.low) else c.low,
                "high": None if math.isnan(c.high) else c.high,
                "basis": c.basis,
                "replicates": {
                    ",".join(f"{a}={x.value(a)}" for a in replicate_axes(axes)) or x.cell_id: x.metrics.get(metric)
                    for x in c.cells
                },
            }
            for c in (ranked_conditions(conds, metric) if fair else conds)
        ],
    }


def write_csv(path: Path, cells: list[CellResult], axes: list[str]) -> None:
    keys = sorted({k for c in cells for k in c.metrics})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "cell_id", "label", "status", *axes, *keys])
        for c in sorted(cells, key=lambda c: c.index):
            w.writerow(
                [
                    c.index,
                    c.cell_id,
                    c.label,
                    c.status,
                    *(c.axes.get(a, "") for a in axes),
                    *(c.metrics.get(k, "") for k in keys),
                ]
            )


def _ink(im: Any, value: float) -> str:
    """Black on light cells of a heat map, white on dark ones."""
    r, g, b, _ = im.cmap(im.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def numeric_values(labels: list[str]) -> list[float] | None:
    """The axis values as positive numbers (dataset.n, lr, steps), or None for categories."""
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return None
    return values if values and all(v > 0 for v in values) and len(set(values)) > 1 else None


def plot(out: Path, cells: list[CellResult], metric: str, axes: list[str]) -> list[str]:
    """Write the PNG plots; return their file names. Score plots only for a comparable score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    name = {
        c.index: (" ".join(f"{a.split('.')[-1]}={c.axes.get(a, '-')}" for a in axes) if axes else c.label)
        for c in cells
    }
    scored = [c for c in ranked(cells, metric) if metric in c.metrics]
    grid = grid_axes(axes)
    fair = comparable(metric, axes)
    conds = [c for c in conditions(cells, metric, axes) if not math.isnan(c.mean)] if fair else []
    best, why = winner(conditions(cells, metric, axes), metric) if fair else (None, "")
    title = (
        f"{metric}: " + (f"best {' '.join(best.where)}" if best else "no clear winner") + (f"\n({why})" if why else "")
    )

    note = None
    if len(grid) == 2 and conds:  # the classic grid: a heat map of axis 1 x axis 2
        rows = list(dict.fromkeys(c.value(grid[0]) for c in cells))
        cols = list(dict.fromkeys(c.value(grid[1]) for c in cells))
        values = [[math.nan] * len(cols) for _ in rows]
        text = [[""] * len(cols) for _ in rows]
        top = ranked_conditions(conds, metric)[0]
        paired = False
        for cond in conds:
            i, j = rows.index(cond.where[0]), cols.index(cond.where[1])
            values[i][j] = cond.mean
            half = (cond.high - cond.low) / 2 if cond.basis != "none" else None
            text[i][j] = _fmt(cond.mean) + (f"\n±{half:.2g}" if half else "")
            gap = paired_difference(cond, top, metric) if cond is not top else None
            if gap is not None:  # the difference from the top cell, * where its paired interval excludes 0
                paired = True
                text[i][j] += f"\nΔ {cond.mean - top.mean:+.4f}" + ("*" if gap[0] > 0 or gap[1] < 0 else "")
            text[i][j] += "\nbest" if cond is best else ""
        fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(cols), 1.6 + 0.8 * len(rows)))
        im = ax.imshow(values, cmap="viridis_r" if lower_is_better(metric) else "viridis", aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(grid[1])
        ax.set_ylabel(grid[0])
        for i, r in enumerate(values):
            for j, v in enumerate(r):
                if not math.isnan(v):
                    ax.text(
                        j,
                        i,
                        text[i][j],
                        ha="center",
                        va="center",
                        color=_ink(im, v),
                        fontsize=7,
                        fontweight="bold" if "best" in text[i][j] else "normal",
                    )
        fig.colorbar(im, ax=ax, label=metric)
        if paired:
            note = fig.text(
                0.01,
                0.01,
                "±: the cell's own 95% interval. Δ: difference from the top cell; * = resolved\n"
                "(its 95% paired-bootstrap interval over the same items excludes 0)",
                fontsize=6,
                va="bottom",
            )
    elif conds:
        order = ranked_conditions(conds, metric)
        labels = [" ".join(c.where) or c.cells[0].label for c in order][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.9 + 0.35 * len(order)))
        means = [c.mean for c in order][::-1]
        err = [[c.mean - c.low for c in order][::-1], [c.high - c.mean for c in order][::-1]]
        ax.barh(labels, means, xerr=err, color="tab:blue", ecolor="black", capsize=3)
        ax.set_xlabel(metric + (" (lower is better)" if lower_is_better(metric) else "") + ", 95% interval")
    if conds:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(title, 60, break_long_words=False, replace_whitespace=False)), fontsize=8)
        fig.tight_layout(rect=(0, 0.07 if note else 0, 1, 1))
        fig.savefig(out / "scores.png", dpi=110)
        plt.close(fig)
        written.append("scores.png")

    if grid and conds:
        fig, panels = plt.subplots(1, len(grid), figsize=(3.6 * len(grid), 3.2), squeeze=False)
        for ax, axis in zip(panels[0], grid):
            groups = by_axis(cells, axis, metric)
            labels = [g["value"] for g in groups]
            numeric = numeric_values(labels)
            # sizes and learning rates are quantities: placed at their values on a log axis, not as categories
            xs = numeric if numeric is not None else list(range(len(groups)))
            for c in scored:  # each cell a dot, each value's mean and interval across
                ax.plot(xs[labels.index(c.value(axis))], c.metrics[metric], "o", color="tab:blue", ms=5, alpha=0.7)
            for x, g in zip(xs, groups):
                if g["n"]:
                    if numeric is not None:
                        ax.plot([x], [g["mean"]], "_", color="black", ms=16, mew=2)
                    else:
                        ax.hlines(g["mean"], x - 0.3, x + 0.3, color="black", lw=2)
                    if g["n"] > 1:
                        ax.vlines(x, g["low"], g["high"], color="black", lw=1)
            if numeric is not None:
                ax.set_xscale("log")
                ax.set_xticks(
                    sorted(set(numeric)),
                    [labels[numeric.index(v)] for v in sorted(set(numeric))],
                    rotation=30,
                    ha="right",
                )
                ax.minorticks_off()
                points = sorted((x, g["mean"]) for x, g in zip(xs, groups) if g["n"])
                if len(points) > 1:
                    ax.plot(*zip(*points), "-", color="black", lw=1, alpha=0.6)
                ax.set_title(f"{axis} (log scale)")
            else:
                ax.set_xlim(-0.6, len(groups) - 0.4)
                ax.set_xticks(range(len(groups)), labels, rotation=30, ha="right")
                ax.set_title(axis)
            ax.set_ylabel(metric)
        fig.tight_layout()
        fig.savefig(out / "axes.png", dpi=110)
        plt.close(fig)
        written.append("axes.png")

    tasks = task_metrics(cells)
    if tasks and scored and len({c.metrics.get(k) for c in scored for k in tasks}) > 1:  # all equal: nothing to see
        scores = [[c.metrics.get(k, math.nan) for k in tasks] for c in scored]
        fig, ax = plt.subplots(figsize=(2.5 + 0.55 * len(tasks), 1.2 + 0.4 * len(scored)))
        im = ax.imshow(
            scores,
            cmap="viridis",
            aspect="auto",
            vmin=0,
            vmax=max(1e-9, max((v for r in scores for v in r if not math.isnan(v)), default=1)),
        )
        ax.set_xticks(range(len(tasks)), [t.split("/", 1)[1] for t in tasks], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(scored)), [name[c.index] for c in scored], fontsize=8)
        if len(tasks) * len(scored) <= 300:  # small enough to print the numbers
            for i, row in enumerate(scores):
                for j, v in enumerate(row):
                    if not math.isnan(v):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color=_ink(im, v), fontsize=6)
        fig.colorbar(im, ax=ax)
        ax.set_title("per-task scores")
        fig.tight_layout()
        fig.savefig(out / "tasks.png", dpi=110)
        plt.close(fig)
        written.append("tasks.png")

    curves = [c for c in cells if any("train/loss" in r for r in c.history)]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for c in curves:
            pts = [(r["step"], r["train/loss"]) for r in c.history if "train/loss" in r]
            (line,) = ax.plot(*zip(*pts), label=name[c.index], lw=1.2)
            held = [(r["step"], r["eval/loss"]) for r in c.history if "eval/loss" in r]
            if held:
                ax.plot(*zip(*held), "o--", color=line.get_color(), ms=3, lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (solid: train, dashed: held-out)")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_title("training loss")
        fig.tight_layout()
        fig.savefig(out / "loss.png", dpi=110)
        plt.close(fig)
        written.append("loss.png")
    return written


def write_report(
    sweep_dir: Path, metric: str | None = None, with_plots: bool = True, resamples: int = BOOTSTRAP
) -> tuple[Path, str]:
    """Write ``<sweep_dir>/report/``; return the directory and the markdown text."""
    cells = load_sweep(sweep_dir)
    if not cells:
        raise ReportError(f"{sweep_dir / 'summary.json'} lists no cells")
    axes = varying_axes(cells)
    chosen = pick_metric(cells, metric, axes)
    add_intervals(cells, chosen, resamples)
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):  # plots of an earlier report that may not be drawn this time
        old.unlink()
    plots, note = [], ""
    if with_plots:
        try:
            plots = plot(out, cells, chosen, axes)
        except ImportError:  # e.g. mlflow-skinny installs without matplotlib: tables only
            note = "\nNo plots: matplotlib is not installed (`pip install matplotlib`).\n"
    text = markdown(sweep_dir, cells, chosen, axes, plots) + note + judged_sections(sweep_dir)
    (out / "report.md").write_text(text, encoding="utf-8")
    write_csv(out / "cells.csv", cells, axes)
    (out / "conditions.json").write_text(
        json.dumps(conditions_json(cells, chosen, axes), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return out, text


# --------------------------------------------------------------------------- judged, graded and read (issue 18)


def judged_sections(sweep_dir: Path) -> str:
    """ELYZA-tasks-100 scores, pairwise win rates, human grading and samples (jsweep.tools.report_judged)."""
    from jsweep.tools.report_judged import sections

    text = sections(sweep_dir)
    return "\n" + text if text else ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path("outputs"),
        help="a sweep directory, or an output root (its newest sweep); default: outputs",
    )
    parser.add_argument("--metric", help=f"score to rank by (default: first present of {', '.join(default_metrics())})")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=BOOTSTRAP,
        help=f"resamples for each cell's interval over its evaluation samples (default {BOOTSTRAP}; 0 = none)",
    )
    args = parser.parse_args(argv)
    try:
        out, text = write_report(find_sweep(args.path), args.metric, not args.no_plots, args.bootstrap)
    except JsweepError as exc:
        print(f"jsweep report: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print(f"\njsweep report: written to {out}")
    return 0
