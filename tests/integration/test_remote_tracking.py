"""A remote MLflow tracking server with authentication (MLflow's basic-auth app): cells log to it with
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment, and the password is never
written anywhere (files of the cell and sweep directories, logs, console)."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.support.servers import PASSWORD, USER, auth_client, auth_server, password_nowhere
from tests.support.sweeps import finish, run_jsweep, start_jsweep
from tests.support.tracking import cell_runs


def refused_without_credentials(uri: str) -> bool:
    try:
        urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    return False


def test_a_sweep_logs_to_an_authenticated_remote_server(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    with auth_server(tmp_path) as uri:
        assert refused_without_credentials(uri)
        # With a wrong password the sweep is refused by the server, and says so in one line: a sweep of
        # its own (another cell, another directory), run at the same time as the one that logs.
        (tmp_path / "refused").mkdir()
        refused = start_jsweep(
            ["train.max_steps=2", "eval=[]", "seed=7"],
            tmp_path / "refused",
            MLFLOW_TRACKING_URI=uri,
            MLFLOW_TRACKING_USERNAME=USER,
            MLFLOW_TRACKING_PASSWORD="wrong-password-123",
        )
        proc = run_jsweep(
            ["train.max_steps=2", "eval=[llm_jp_eval]", "eval.llm_jp_eval.tasks=[jnli]"],
            tmp_path,
            MLFLOW_TRACKING_URI=uri,
            MLFLOW_TRACKING_USERNAME=USER,
            MLFLOW_TRACKING_PASSWORD=PASSWORD,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        (run,) = cell_runs(auth_client(uri))
        assert run.info.status == "FINISHED" and "eval/loss" in run.data.metrics
        assert run.data.tags.get("jsweep.complete") == "true"
        assert password_nowhere(tmp_path, proc.stdout, proc.stderr) == []
        bad = finish(refused)
        assert bad.returncode != 0 and "wrong-password-123" not in bad.stdout + bad.stderr
