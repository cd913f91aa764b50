"""``jsweep ui-check [--uri URI] [--experiment NAME] [--out DIR]``: open a finished sweep in the real
MLflow UI with headless Chromium, save screenshots of its runs table and compare page, and list the
columns and rows they show.

It starts ``mlflow server`` on a free local port over the tracking store (default: the embedded
``sqlite:///./mlflow.db``), waits for it, then runs Debian's ``chromium`` (``apt-get install
chromium``) headless on:

- the runs table, opened on the view the sweep saved (``?viewStateShareKey=jsweep-latest``: its cells,
  grid axes and headline scores as columns): ``runs.png`` and ``runs.html`` (the rendered DOM);
- the compare page of the newest sweep's cells, ``/#/compare-runs?runs=[...]``: ``compare.png``
  and ``compare.html``.

``ui_check.json`` records the URLs, the run names and params the pages show, and which of the
expected columns (grid axes, headline metrics) were found in the rendered pages. Exit code 0
when every expected name is visible, 1 otherwise, 2 when Chromium or the server is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        uri,
        "--workers",
        "1",
    ]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, timeout: float = 90.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:  # not up yet
            pass
        time.sleep(0.5)
    return False


def api(base: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}",
        method="POST" if payload is not None else "GET",
        data=json.dumps(payload).encode() if payload is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def render(
    chromium: str, url: str, png: Path, html: Path, profile: Path, size: str = "1800,1100", budget_ms: int = 20000
) -> str:
    """Screenshot ``url`` and return its rendered DOM (after ``budget_ms`` of virtual time)."""
    common = [
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        f"--virtual-time-budget={budget_ms}",
    ]
    subprocess.run([chromium, *common, f"--screenshot={png}", url], capture_output=True, timeout=180)
    dom = subprocess.run([chromium, *common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    html.write_text(dom.stdout, encoding="utf-8")
    return dom.stdout


def visible_text(dom: str) -> str:
    """The text of a rendered page (tags and scripts stripped), for "is this name on the page"."""
    dom = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jsweep ui-check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--uri", default=os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    )
    parser.add_argument("--experiment", default="jsweep")
    parser.add_argument("--out", type=Path, default=Path("outputs") / "ui_check")
    parser.add_argument(
        "--expect",
        default="",
        help="comma-separated names that must be visible (default: the newest sweep's axes and its score)",
    )
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("jsweep ui-check: error: no chromium found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args.uri, port, args.out / "server.log")
    try:
        if not wait_ready(base):
            print(
                f"jsweep ui-check: error: mlflow server did not start (see {args.out / 'server.log'})", file=sys.stderr
            )
            return 2
        exp = api(base, f"experiments/get-by-name?experiment_name={urllib.parse.quote(args.experiment)}")["experiment"]
        runs = api(base, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 500}).get("runs", [])

        def tags(r: dict[str, Any]) -> dict[str, str]:
            return {t["key"]: t["value"] for t in r["data"].get("tags", [])}

        sweeps = sorted(
            (r for r in runs if tags(r).get("jsweep.kind") == "sweep"), key=lambda r: r["info"]["start_time"]
        )
        if not sweeps:
            print("jsweep ui-check: error: no sweep in the experiment", file=sys.stderr)
            return 1
        parent = sweeps[-1]
        cells = [r for r in runs if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
        ptags = tags(parent)
        grid = next((p["value"] for p in parent["data"].get("params", []) if p["key"] == "grid"), "")
        axes = [
            o.partition("=")[0]
            for o in grid.split()
            if "," in o.partition("=")[2] and not o.partition("=")[2].startswith(("[", "{"))
        ]
        score = ptags.get("jsweep.score", "")
        expect = [e for e in args.expect.split(",") if e] or [*axes, score]
        expect = [e for e in expect if e]
        from jsweep.runview import LATEST_VIEW, SHARED_VIEW_TAG, view_url

        shared = any(t["key"] == SHARED_VIEW_TAG + LATEST_VIEW for t in exp.get("tags", []))
        with tempfile.TemporaryDirectory() as profile:
            runs_url = (
                view_url(base, exp["experiment_id"]) if shared else f"{base}/#/experiments/{exp['experiment_id']}/runs"
            )
            ids = json.dumps([r["info"]["run_id"] for r in cells])
            compare_url = f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([exp['experiment_id']])}"
            runs_dom = render(chromium, runs_url, args.out / "runs.png", args.out / "runs.html", Path(profile) / "a")
            compare_dom = render(
                chromium, compare_url, args.out / "compare.png", args.out / "compare.html", Path(profile) / "b"
            )
        runs_text, compare_text = visible_text(runs_dom), visible_text(compare_dom)
        names = [r["info"].get("run_name", "") for r in cells]
        found = {e: {"runs_table": e in runs_text, "compare": e in compare_text} for e in expect}
        report = {
            "runs_url": runs_url,
            "compare_url": compare_url,
            "expected": found,
            "run_names": names,
            "run_names_in_table": [n for n in names if n and n in runs_text],
            "params_per_run": [len(r["data"].get("params", [])) for r in cells],
            "screenshots": ["runs.png", "compare.png"],
        }
        (args.out / "ui_check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(json.dumps(report, indent=2, ensure_ascii=False))
        ok = all(v["compare"] and v["runs_table"] for v in found.values()) and len(report["run_names_in_table"]) == len(
            names
        )
        return 0 if ok else 1
    finally:
        try:
            os.killpg(server.pid, 15)
        except ProcessLookupError:
            pass
        server.wait(timeout=30)
