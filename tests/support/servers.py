"""Local servers for tests: a free port, a plain MLflow tracking server, and MLflow's basic-auth app
with its credentials (the password must never be written anywhere: ``password_nowhere`` looks)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server(tmp: Path, port: int, *extra: str, **env: str) -> subprocess.Popen:
    """``mlflow server [EXTRA]`` on 127.0.0.1:port, its stores under ``tmp``, in its own session."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            *extra,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp / 'server.db'}",
            "--artifacts-destination",
            str(tmp / "server-artifacts"),
            "--workers",
            "1",
        ],
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def tracking_server(tmp: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1:port, its stores under ``tmp``, in its own session."""
    return mlflow_server(tmp, port)


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


USER, PASSWORD = "admin", "jsweep-S3cret-pass-7781"


@contextmanager
def auth_server(tmp: Path):
    """`mlflow server --app-name basic-auth` on a free port; yields its URI (no credentials in it)."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (pip install -e '.[dev]')")
    ini = tmp / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
        f"admin_username = {USER}\nadmin_password = {PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    server = mlflow_server(
        tmp,
        port,
        "--app-name",
        "basic-auth",
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_FLASK_SERVER_SECRET_KEY="jsweep-test-csrf-key",
    )
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


def auth_client(uri: str):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = USER, PASSWORD
    return MlflowClient(uri)


def password_nowhere(tmp: Path, *texts: str) -> list[str]:
    """Files under ``tmp`` (but the server's own stores) and texts that hold the password, in clear or
    base64 (an Authorization header)."""
    needles = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    found = [f"text {i}" for i, t in enumerate(texts) if any(n in t for n in needles)]
    for p in tmp.rglob("*"):
        if (
            p.is_file()
            and not p.name.startswith(("auth.db", "server.db", "basic_auth.ini"))
            and "server-artifacts" not in p.parts
        ):
            data = p.read_bytes()
            if any(n.encode() in data for n in needles):
                found.append(str(p))
    return found
