"""The whole path against a real model server: `transformers serve` (OpenAI-compatible, offline) serving
the tiny model as the judge of a one-cell sweep. The tiny model's judgments are mostly gibberish, so
what this checks is that every answer is judged and the unparseable ones are counted as such."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tests.support.sweeps import cli_env, run_jsweep

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture
def transformers_server(tiny_model_dir, tmp_path):
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        pytest.skip("the transformers CLI is not installed")
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes to it until the finally block closes it
    proc = subprocess.Popen(
        [
            exe,
            "serve",
            str(tiny_model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(tmp_path),
        start_new_session=True,
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("transformers serve did not come up in 180 s")
        yield f"http://127.0.0.1:{port}/v1", str(tiny_model_dir)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def test_a_sweep_judged_by_transformers_serve_counts_unparseable_judgments(tmp_path, transformers_server):
    base_url, model = transformers_server
    proc = run_jsweep(
        [
            "eval=[elyza_tasks_100]",
            "train.max_steps=1",
            "eval.elyza_tasks_100.max_new_tokens=8",
            f"judge.base_url={base_url}",
            f"judge.model={model}",
            "judge.max_tokens=8",
            "judge.concurrency=1",
            "judge.timeout=120",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "outputs" / "sweeps").glob("*/summary.json")]
    (cell,) = summary["cells"]
    m = cell["metrics"]
    parsed = sum(m[f"elyza_tasks_100/dist/{s}"] for s in range(1, 6))
    assert m["elyza_tasks_100/pending"] == 0 and m["elyza_tasks_100/judged"] == 5
    assert m["elyza_tasks_100/unparseable"] == 5 - parsed
    items = [
        json.loads(line)
        for line in (Path(cell["log"]).parent / "elyza_tasks_100" / "items.jsonl").read_text().splitlines()
    ]
    assert all(isinstance(it["judge_reply"], str) for it in items)  # the server's own replies
    assert sum(it["status"] == "unparseable" for it in items) == m["elyza_tasks_100/unparseable"]
