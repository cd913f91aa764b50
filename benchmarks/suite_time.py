"""The fast test suite's time, serial and with two pytest workers, side by side in one run (issue 21).

    python benchmarks/suite_time.py                       # both, serial first
    python benchmarks/suite_time.py --modes workers2      # what `make test` runs

Each mode runs the whole default suite (`python -m pytest -q`, the markers of pyproject.toml) in a fresh
process, one after the other, on the same tree. Per mode: wall time, the CPU time of pytest and every
process it started (user + sys, from getrusage of the waited-for children), the load average before
and after, the pytest summary line and the slowest tests. The ratio is serial wall time over each
mode's. Run it with nothing else on the machine: the suite is mostly process start-ups and waits, so
another job's load moves every figure (docs/testing.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "serial": [],
    "workers2": ["-n", "2", "--dist", "loadgroup"],  # make test
}


def run_mode(name: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODES[name], "--durations=10", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout + proc.stderr
    summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed)", line) and " in " in line]
    slowest = [line.strip() for line in out.split("slowest 10 durations")[-1].splitlines()[1:11] if "s " in line]
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    return {
        "command": " ".join(["python", *cmd[1:]]),
        "rc": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "summary": summary[-1].strip("= ") if summary else "",
        "failed": failed,
        "slowest": slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="serial,workers2", help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "suite_time.json")
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "env": {k: os.environ.get(k, "") for k in ("JSWEEP_REAL_JGLUE", "JSWEEP_SLURM_REQUIRED")},
        "modes": {},
    }
    for name in args.modes.split(","):
        print(f"== {name}: running the suite ...", flush=True)
        result = run_mode(name, args.extra)
        report["modes"][name] = result
        print(f"== {name}: {result['summary']} (rc {result['rc']}); wall {result['wall_s']} s, cpu {result['cpu_s']} s")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    modes = report["modes"]
    print(f"\n{'mode':10} {'wall':>9} {'cpu':>9} {'vs serial':>10}  summary")
    for name, r in modes.items():
        ratio = f"{modes['serial']['wall_s'] / r['wall_s']:.2f}x" if "serial" in modes else "-"
        print(f"{name:10} {r['wall_s']:>8.1f}s {r['cpu_s']:>8.1f}s {ratio:>10}  {r['summary']}")
        for line in r["failed"]:
            print(f"           {line}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
