"""Planning a large grid: ``python -m jsweep -m <grid> launcher.dry_run=true`` for 100 and 1,000
cells on the embedded default (every cell composed, validated, its data and evaluation data checked,
its id computed; nothing runs). Prints the wall time of each and writes
benchmarks/results/plan_scale.json.

    python benchmarks/plan_scale.py                       # this checkout, 100 and 1,000 cells
    python benchmarks/plan_scale.py --baseline /path/to/other/checkout --baseline-cells 100

``--baseline`` times another checkout of jsweep (e.g. the commit before the fast composition) in the
same run, for the cell counts in ``--baseline-cells``, so the figures sit side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LRS = [f"{m}e-{e}" for e in (4, 5) for m in (1, 2, 3, 5, 7)]  # 10 learning rates


def grid(cells: int) -> list[str]:
    """A grid of ``cells`` distinct cells: 10 learning rates x seeds (x max_steps for 1,000)."""
    if cells % 10:
        raise SystemExit("--cells: a multiple of 10")
    axes = [f"lr={','.join(LRS)}"]
    rest = cells // 10
    if rest <= 10:
        axes.append("seed=" + ",".join(str(s) for s in range(rest)))
    else:
        if rest % 10:
            raise SystemExit("--cells above 100: a multiple of 100")
        axes += [
            "seed=" + ",".join(str(s) for s in range(10)),
            "train.max_steps=" + ",".join(str(10 + s) for s in range(rest // 10)),
        ]
    return ["-m", *axes, "launcher.dry_run=true"]


def timed(src: Path, cells: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            PYTHONPATH=str(src),
        )
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "jsweep", *grid(cells)], cwd=tmp, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
    if proc.returncode != 0 or f"{cells} cell(s) planned" not in proc.stdout:
        raise SystemExit(f"{src}: {cells} cells: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return {"cells": cells, "wall_s": round(seconds, 2), "per_cell_ms": round(1000 * seconds / cells, 1)}


def commit(src: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--baseline", type=Path, default=None, help="another jsweep checkout to time alongside")
    parser.add_argument("--baseline-cells", type=int, nargs="+", default=[100])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "plan_scale.json")
    args = parser.parse_args(argv)

    report = {
        "what": "python -m jsweep -m <grid> launcher.dry_run=true (embedded default, both evaluators)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "this": {"commit": commit(ROOT), "runs": []},
    }
    for n in args.cells:
        r = timed(ROOT, n)
        report["this"]["runs"].append(r)
        print(
            f"this checkout ({report['this']['commit']}): {n} cells planned in {r['wall_s']:.1f} s "
            f"({r['per_cell_ms']:.0f} ms a cell)",
            flush=True,
        )
    if args.baseline:
        report["baseline"] = {"path": str(args.baseline), "commit": commit(args.baseline), "runs": []}
        for n in args.baseline_cells:
            r = timed(args.baseline, n)
            report["baseline"]["runs"].append(r)
            mine = next((x for x in report["this"]["runs"] if x["cells"] == n), None)
            ratio = f"; this checkout is {r['wall_s'] / mine['wall_s']:.1f}x faster" if mine else ""
            print(
                f"baseline ({report['baseline']['commit']}): {n} cells planned in {r['wall_s']:.1f} s "
                f"({r['per_cell_ms']:.0f} ms a cell){ratio}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
