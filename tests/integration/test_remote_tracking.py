"""A remote MLflow tracking server with authentication (MLflow's basic-auth app): cells log to it with
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment, and the password is never
written anywhere (files of the cell and sweep directories, logs, console)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import run_jsweep

USER, PASSWORD = "admin", "jsweep-S3cret-pass-7781"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def auth_server(tmp: Path):
    """`mlflow server --app-name basic-auth` on a free port; yields its URI (no credentials in it)."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (pip install -e '.[dev]')")
    ini = tmp / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
                   f"admin_username = {USER}\nadmin_password = {PASSWORD}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = _free_port()
    env = dict(os.environ, MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_FLASK_SERVER_SECRET_KEY="jsweep-test-csrf-key")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp / 'server.db'}",
                               "--artifacts-destination", str(tmp / "server-artifacts"), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() - t0 < 120 and server.poll() is None, "the MLflow server did not start"
            time.sleep(0.5)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def refused_without_credentials(uri: str) -> bool:
    try:
        urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    return False


def client(uri: str):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = USER, PASSWORD
    return MlflowClient(uri)


def cell_runs(c) -> list:
    exp = c.get_experiment_by_name("jsweep")
    return [r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get("jsweep.kind") == "cell"]


def password_nowhere(tmp: Path, *texts: str) -> list[str]:
    """Files under ``tmp`` (but the server's own stores) and texts that hold the password, in clear or
    base64 (an Authorization header)."""
    needles = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    found = [f"text {i}" for i, t in enumerate(texts) if any(n in t for n in needles)]
    for p in tmp.rglob("*"):
        if p.is_file() and not p.name.startswith(("auth.db", "server.db", "basic_auth.ini")) \
                and "server-artifacts" not in p.parts:
            data = p.read_bytes()
            if any(n.encode() in data for n in needles):
                found.append(str(p))
    return found


def test_a_sweep_logs_to_an_authenticated_remote_server(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with auth_server(tmp_path) as uri:
        assert refused_without_credentials(uri)
        proc = run_jsweep(["train.max_steps=2", "eval=[llm_jp_eval]", "eval.llm_jp_eval.tasks=[jnli]"], tmp_path,
                          MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD=PASSWORD)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        (run,) = cell_runs(client(uri))
        assert run.info.status == "FINISHED" and "eval/loss" in run.data.metrics
        assert run.data.tags.get("jsweep.complete") == "true"
        assert password_nowhere(tmp_path, proc.stdout, proc.stderr) == []
        # Without credentials the sweep is refused by the server, and says so in one line.
        bad = run_jsweep(["train.max_steps=2", "eval=[]", "seed=7"], tmp_path, MLFLOW_TRACKING_URI=uri,
                         MLFLOW_TRACKING_USERNAME=USER, MLFLOW_TRACKING_PASSWORD="wrong-password-123")
        assert bad.returncode != 0 and "wrong-password-123" not in bad.stdout + bad.stderr
