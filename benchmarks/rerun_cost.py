"""Cost of re-running a finished sweep: the mission sweep (6 cells) on the embedded default, run
once, then run again unchanged (every cell is skipped as finished). Prints both wall times and
the second as a fraction of the first; writes benchmarks/results/rerun_cost.json.

    python benchmarks/rerun_cost.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["-m", "dataset=dolly,ichikara,oasst", "lr=1e-5,1e-4"]


def timed(cwd: Path) -> tuple[float, str]:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{cwd / 'mlflow.db'}", HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jsweep", *GRID], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return seconds, proc.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first, _ = timed(Path(tmp))
        second, out = timed(Path(tmp))
    skipped = out.count("skip: already finished")
    report = {
        "grid": " ".join(GRID),
        "first_run_s": round(first, 1),
        "rerun_s": round(second, 1),
        "rerun_fraction": round(second / first, 4),
        "cells_skipped": skipped,
    }
    print(
        f"first run {first:.1f} s; re-run {second:.1f} s ({skipped}/6 cells skipped) = "
        f"{100 * second / first:.1f}% of the first"
    )
    out_path = Path(__file__).parent / "results" / "rerun_cost.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
