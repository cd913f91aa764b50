"""``jsweep report [PATH]``: compare the cells of a sweep, in tables and plots.

PATH is a sweep directory (``outputs/sweeps/<time>/``, holding ``summary.json``) or an output root,
whose newest sweep is taken; the default is ``outputs``. The report goes to ``<sweep dir>/report/``:

- ``report.md``: the cells ranked by the chosen score; for each axis of the grid, the mean, best
  and worst score of each of its values ("which data / method / lr helped"); per-task scores;
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

from jsweep.errors import JsweepError

# Scores tried in order when --metric is not given: the first on which the cells differ is used
# (a tiny test model scores 0 everywhere on llm-jp-eval, but its losses differ).
DEFAULT_METRICS = ("llm_jp_eval/AVG", "llm_jp_eval/AVG_partial", "jglue/AVG", "elyza_tasks_100/score",
                   "human_eval/accuracy", "eval/loss", "train/final_loss")
# Columns shown beside the score in the cells table, where cells have them.
SIDE_COLUMNS = ("eval/loss", "train/final_loss", "train/tokens_per_second_per_gpu", "train/mfu",
                "gpu/peak_memory_gb", "time/total_seconds")


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
    diverged: list[str] = field(default_factory=list)   # metrics that are NaN or infinite (kept out of rankings)

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
    found = sorted((path / "sweeps").glob("*/summary.json"), key=lambda p: p.stat().st_mtime) \
        if (path / "sweeps").is_dir() else []
    if not found:
        raise ReportError(f"no sweep found at {path} (expected a sweep directory with summary.json, "
                          f"or an output root with sweeps/*/summary.json)")
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
            continue                                    # a line cut by a kill mid-write
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
        if overrides is None:                           # summaries written before overrides were recorded
            meta_path = cell_dir / "cell.json"
            meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
            overrides = meta.get("spec", {}).get("overrides") or []
        values = {k: float(v) for k, v in (row.get("metrics") or {}).items() if isinstance(v, (int, float))}
        cells.append(CellResult(row["index"], row["cell_id"], row["label"], row["status"], axes_of(overrides),
                                {k: v for k, v in values.items() if math.isfinite(v)},
                                read_history(cell_dir / "history.jsonl"),
                                sorted(k for k, v in values.items() if not math.isfinite(v))))
    return cells


# --------------------------------------------------------------------------- analysis

def pick_metric(cells: list[CellResult], requested: str | None) -> str:
    have = {k for c in cells for k in c.metrics}
    if requested:
        if requested not in have:
            close = sorted(k for k in have if requested.split("/")[-1].lower() in k.lower())[:8]
            raise ReportError(f"no cell has metric '{requested}'" + (f" (similar: {', '.join(close)})" if close else ""))
        return requested
    present = [k for k in DEFAULT_METRICS if k in have]
    for key in present:                 # a score on which every cell ties ranks nothing: try the next
        if len({c.metrics[key] for c in cells if key in c.metrics}) > 1:
            return key
    if present:
        return present[0]
    raise ReportError("no cell has a score to compare (" + ", ".join(DEFAULT_METRICS) + ")")


def lower_is_better(metric: str) -> bool:
    return metric.endswith("loss") or metric.endswith("_seconds") or metric.endswith("memory_gb")


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
    """Per value of ``axis``: cells, mean, best and worst score (cells without the score are left out)."""
    groups: dict[str, list[float]] = {}
    for c in cells:
        groups.setdefault(c.value(axis), [])
        if metric in c.metrics:
            groups[c.value(axis)].append(c.metrics[metric])
    best = min if lower_is_better(metric) else max
    worst = max if lower_is_better(metric) else min
    return [{"value": v, "n": len(xs), "mean": sum(xs) / len(xs) if xs else math.nan,
             "best": best(xs) if xs else math.nan, "worst": worst(xs) if xs else math.nan}
            for v, xs in groups.items()]


def task_metrics(cells: list[CellResult]) -> list[str]:
    """Per-task scores: llm-jp-eval categories and JGLUE task metrics (no averages, no stderr)."""
    keys = {k for c in cells for k in c.metrics}
    cats = sorted(k for k in keys if k.startswith("llm_jp_eval/") and k.count("/") == 1
                  and k.split("/")[1].removesuffix("_partial").isupper()
                  and not k.endswith(("/AVG", "/AVG_partial")))
    jglue = sorted(k for k in keys if k.startswith("jglue/") and k.count("/") == 2 and "stderr" not in k)
    return cats + jglue


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
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(sweep_dir: Path, cells: list[CellResult], metric: str, axes: list[str], plots: list[str]) -> str:
    direction = "lower is better" if lower_is_better(metric) else "higher is better"
    done = sum(c.status in ("FINISHED", "SKIPPED") for c in cells)
    lines = [f"# Sweep report: {sweep_dir.name}", "",
             f"{len(cells)} cell(s), {done} finished. Score: `{metric}` ({direction}).", ""]
    if metric.startswith(("eval/", "train/")) and any(a.split("@")[0] in ("dataset", "data_source") for a in axes):
        lines += [f"Note: `{metric}` is measured on each cell's own data, so it does not compare cells across "
                  f"datasets. Rank by a shared benchmark instead (`--metric llm_jp_eval/AVG`).", ""]
    side = [k for k in SIDE_COLUMNS if k != metric and any(k in c.metrics for c in cells)]
    names = axes or ["cell"]
    rows = []
    for rank, c in enumerate(ranked(cells, metric), 1):
        rows.append([str(rank), c.cell_id[:8], *c.where(axes), c.status, _cell(c, metric), *(_cell(c, k) for k in side)])
    lines += ["## Cells, best first", ""]
    lines += _md_table(["#", "cell", *names, "status", f"**{metric}**", *side], rows) + [""]
    bad = [c for c in cells if metric in c.diverged]
    if bad:
        lines += [f"Diverged (`{metric}` is NaN or infinite; ranked last, left out of the means): "
                  + ", ".join(f"`{c.cell_id[:8]}` {c.label}" for c in bad), ""]
    for axis in axes:
        groups = by_axis(cells, axis, metric)
        scored = [g for g in groups if g["n"]]
        top = (min if lower_is_better(metric) else max)(g["mean"] for g in scored) if scored else None
        lines += [f"## By `{axis}`", ""]
        lines += _md_table([axis, "cells", f"mean {metric}", "best", "worst"],
                           [[f"**{g['value']}**" if g["n"] and g["mean"] == top else g["value"], str(g["n"]), _fmt(g["mean"]),
                             _fmt(g["best"]), _fmt(g["worst"])] for g in groups]) + [""]
    tasks = task_metrics(cells)
    if tasks:
        lines += ["## Per task", ""]
        lines += _md_table(["cell", *names, *tasks],
                           [[c.cell_id[:8], *c.where(axes),
                             *(_fmt(c.metrics.get(k)) for k in tasks)] for c in ranked(cells, metric)]) + [""]
    failed = [c for c in cells if c.status not in ("FINISHED", "SKIPPED")]
    if failed:
        lines += ["## Not finished", ""] + [f"- `{c.cell_id[:8]}` {c.label}: {c.status}" for c in failed] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_csv(path: Path, cells: list[CellResult], axes: list[str]) -> None:
    keys = sorted({k for c in cells for k in c.metrics})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "cell_id", "label", "status", *axes, *keys])
        for c in sorted(cells, key=lambda c: c.index):
            w.writerow([c.index, c.cell_id, c.label, c.status, *(c.axes.get(a, "") for a in axes),
                        *(c.metrics.get(k, "") for k in keys)])


def _ink(im: Any, value: float) -> str:
    """Black on light cells of a heat map, white on dark ones."""
    r, g, b, _ = im.cmap(im.norm(value))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def plot(out: Path, cells: list[CellResult], metric: str, axes: list[str]) -> list[str]:
    """Write the PNG plots; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    name = {c.index: (" ".join(f"{a.split('.')[-1]}={c.axes.get(a, '-')}" for a in axes) if axes else c.label)
            for c in cells}
    scored = [c for c in ranked(cells, metric) if metric in c.metrics]

    if len(axes) == 2 and scored:                      # the classic grid: a heat map of axis 1 x axis 2
        rows = list(dict.fromkeys(c.value(axes[0]) for c in cells))
        cols = list(dict.fromkeys(c.value(axes[1]) for c in cells))
        grid = [[math.nan] * len(cols) for _ in rows]
        for c in scored:
            grid[rows.index(c.value(axes[0]))][cols.index(c.value(axes[1]))] = \
                c.metrics[metric]
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cols), 1.2 + 0.6 * len(rows)))
        im = ax.imshow(grid, cmap="viridis_r" if lower_is_better(metric) else "viridis", aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(axes[1])
        ax.set_ylabel(axes[0])
        for i, r in enumerate(grid):
            for j, v in enumerate(r):
                if not math.isnan(v):
                    ax.text(j, i, f"{v:.4g}", ha="center", va="center", color=_ink(im, v), fontsize=8)
        fig.colorbar(im, ax=ax, label=metric)
    elif scored:
        fig, ax = plt.subplots(figsize=(7, 0.9 + 0.35 * len(scored)))
        ax.barh([name[c.index] for c in scored][::-1], [c.metrics[metric] for c in scored][::-1], color="tab:blue")
        ax.set_xlabel(metric + (" (lower is better)" if lower_is_better(metric) else ""))
    if scored:
        ax.set_title(f"{metric} per cell")
        fig.tight_layout()
        fig.savefig(out / "scores.png", dpi=110)
        plt.close(fig)
        written.append("scores.png")

    if axes and scored:
        fig, panels = plt.subplots(1, len(axes), figsize=(3.6 * len(axes), 3.2), squeeze=False)
        for ax, axis in zip(panels[0], axes):
            groups = by_axis(cells, axis, metric)
            labels = [g["value"] for g in groups]
            for c in scored:                       # each cell a dot, each value's mean a bar across
                ax.plot(labels.index(c.value(axis)), c.metrics[metric], "o", color="tab:blue",
                        ms=5, alpha=0.7)
            for i, g in enumerate(groups):
                if g["n"]:
                    ax.hlines(g["mean"], i - 0.3, i + 0.3, color="black", lw=2)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.set_xticks(range(len(groups)), labels, rotation=30, ha="right")
            ax.set_title(axis)
            ax.set_ylabel(metric)
        fig.tight_layout()
        fig.savefig(out / "axes.png", dpi=110)
        plt.close(fig)
        written.append("axes.png")

    tasks = task_metrics(cells)
    if tasks and scored and len({c.metrics.get(k) for c in scored for k in tasks}) > 1:   # all equal: nothing to see
        grid = [[c.metrics.get(k, math.nan) for k in tasks] for c in scored]
        fig, ax = plt.subplots(figsize=(2.5 + 0.55 * len(tasks), 1.2 + 0.4 * len(scored)))
        im = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=0, vmax=max(1e-9, max(
            (v for r in grid for v in r if not math.isnan(v)), default=1)))
        ax.set_xticks(range(len(tasks)), [t.split("/", 1)[1] for t in tasks], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(scored)), [name[c.index] for c in scored], fontsize=8)
        if len(tasks) * len(scored) <= 300:                 # small enough to print the numbers
            for i, row in enumerate(grid):
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
            line, = ax.plot(*zip(*pts), label=name[c.index], lw=1.2)
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


def write_report(sweep_dir: Path, metric: str | None = None, with_plots: bool = True) -> tuple[Path, str]:
    """Write ``<sweep_dir>/report/``; return the directory and the markdown text."""
    cells = load_sweep(sweep_dir)
    if not cells:
        raise ReportError(f"{sweep_dir / 'summary.json'} lists no cells")
    chosen = pick_metric(cells, metric)
    axes = varying_axes(cells)
    out = sweep_dir / "report"
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):          # plots of an earlier report that may not be drawn this time
        old.unlink()
    plots, note = [], ""
    if with_plots:
        try:
            plots = plot(out, cells, chosen, axes)
        except ImportError:              # e.g. mlflow-skinny installs without matplotlib: tables only
            note = "\nNo plots: matplotlib is not installed (`pip install matplotlib`).\n"
    text = markdown(sweep_dir, cells, chosen, axes, plots) + note + judged_sections(sweep_dir)
    (out / "report.md").write_text(text, encoding="utf-8")
    write_csv(out / "cells.csv", cells, axes)
    return out, text


# --------------------------------------------------------------------------- judged, graded and read (issue 18)

def judged_sections(sweep_dir: Path) -> str:
    """ELYZA-tasks-100 scores, pairwise win rates, human grading and samples (jsweep.tools.report_judged)."""
    from jsweep.tools.report_judged import sections

    text = sections(sweep_dir)
    return "\n" + text if text else ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=Path("outputs"),
                        help="a sweep directory, or an output root (its newest sweep); default: outputs")
    parser.add_argument("--metric", help=f"score to rank by (default: first present of {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    try:
        out, text = write_report(find_sweep(args.path), args.metric, not args.no_plots)
    except JsweepError as exc:
        print(f"jsweep report: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print(f"\njsweep report: written to {out}")
    return 0
