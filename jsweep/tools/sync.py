"""``jsweep sync [OUTPUT_ROOT] [--uri URI]``: re-log what the tracking server missed.

While the tracking server is unreachable, cells keep training and evaluating; every tracking
call that failed is kept in ``tracking_journal.jsonl`` of the cell (or sweep) directory, and a
cell whose run could not even be created keeps the run's name, tags and params in
``cell.json``. ``sync`` creates missing runs, replays each journal in order and removes what it
replayed, so running it twice logs nothing twice. Metrics and status also stay in each cell's
``metrics.json`` and ``status.json`` whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from jsweep import cellstate
from jsweep.files import write_json
from jsweep.redaction import MASK, redact_text
from jsweep.tracking import Journal, SweepTracker, apply_op, resolve_uri


def _replay(tracker: SweepTracker, run_id: str, journal: Journal) -> tuple[int, int]:
    ops = journal.ops()
    done = 0
    for op in ops:
        try:
            apply_op(tracker.client, run_id, op)
        except Exception as exc:  # keep the rest for the next sync
            print(
                f"  stopped at a {op['op']} call ({type(exc).__name__}: {exc}); {len(ops) - done} left", file=sys.stderr
            )
            break
        done += 1
    journal.rewrite(ops[done:])
    return done, len(ops) - done


def _store_uri(given: str | None, recorded: str | None) -> str | None:
    """The URI to sync into: ``given`` (--uri), else the one the cell recorded. A recorded URI whose
    credentials were masked (``http://***@host``) is completed from $MLFLOW_TRACKING_URI when that
    is the same URI; otherwise None."""
    if given:
        return resolve_uri(given)
    if recorded and MASK in recorded:
        env = os.environ.get("MLFLOW_TRACKING_URI", "")
        return env if env and redact_text(env) == recorded else None
    return resolve_uri(recorded)


def sync(output_root: Path, uri: str | None = None, experiment: str | None = None) -> dict[str, Any]:
    report = {"runs_created": 0, "calls_replayed": 0, "calls_left": 0, "dirs": 0}
    trackers: dict[tuple[str, str], SweepTracker] = {}
    dirs = [
        d for d in sorted((output_root / "cells").glob("*")) + sorted((output_root / "sweeps").glob("*")) if d.is_dir()
    ]
    for d in dirs:
        journal = Journal(d / cellstate.JOURNAL)
        meta_path = d / cellstate.CELL
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except ValueError:
            print(f"  {meta_path}: not readable JSON, skipped", file=sys.stderr)
            continue
        pending = meta.get("pending_run")
        if not len(journal) and not (pending and not meta.get("run_id")):
            continue
        report["dirs"] += 1
        exp = experiment or meta.get("spec", {}).get("tracking", {}).get("experiment", "jsweep")
        store = _store_uri(uri, meta.get("tracking_uri"))
        if store is None:
            print(
                f"  {d}: its tracking URI ({meta.get('tracking_uri')}) holds credentials, which are never stored; "
                f"pass --uri or set MLFLOW_TRACKING_URI",
                file=sys.stderr,
            )
            report["calls_left"] += len(journal)
            continue
        key = (store, exp)
        if key not in trackers:
            trackers[key] = SweepTracker(store, exp)
        tracker = trackers[key]
        run_id = meta.get("run_id")
        if meta_path.exists() and not run_id and pending:
            tracker.parent_id = pending.get("parent_id")
            run_id = tracker.create_child(pending["name"], pending["tags"], pending["params"])
            meta["run_id"], meta["pending_run"] = run_id, None
            write_json(meta_path, meta, ensure_ascii=False)
            report["runs_created"] += 1
        if not run_id:  # a sweep directory: the journal belongs to its parent run
            run_id = (
                json.loads((d / "summary.json").read_text()).get("parent_run_id")
                if (d / "summary.json").exists()
                else None
            )
        if not run_id:
            print(f"  {d}: no run to sync into", file=sys.stderr)
            continue
        done, left = _replay(tracker, run_id, journal)
        report["calls_replayed"] += done
        report["calls_left"] += left
        print(f"  {d.name}: {done} call(s) re-logged into run {run_id}" + (f", {left} left" if left else ""))
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_root", nargs="?", type=Path, default=Path("outputs"), help="the sweeps' output_root")
    parser.add_argument("--uri", default=None, help="tracking URI (default: each cell's own, or $MLFLOW_TRACKING_URI)")
    args = parser.parse_args(argv)
    if not args.output_root.is_dir():
        print(f"jsweep sync: error: {args.output_root}: no such directory", file=sys.stderr)
        return 2
    report = sync(args.output_root, args.uri)
    print(
        f"jsweep sync: {report['dirs']} director(ies), {report['runs_created']} run(s) created, "
        f"{report['calls_replayed']} call(s) re-logged, {report['calls_left']} left"
    )
    return 1 if report["calls_left"] else 0
