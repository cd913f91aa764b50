"""Nothing lost, nothing duplicated, nothing leaked (issue 14): secrets planted on every route, two
sweeps at once, a launcher that dies, corrupt state, pre-flight of bad values. Each test runs the
real CLI and asserts on the MLflow store and the cell directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from tests.support.processes import FAST, cell_dirs, pid_alive, popen_jsweep, stalled_cell, wait_for
from tests.support.servers import free_port, stop_server, tracking_server
from tests.support.sweeps import run_jsweep
from tests.support.tracking import cell_runs

TINY = ["train.max_steps=2", "eval=[]"]


def _server_up(uri: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
    except OSError:
        return False


def _files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under ``root`` (binary ones too: the SQLite store) that holds one of ``needles``."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


# --------------------------------------------------------------------------- 1. secrets


def test_secrets_planted_on_every_route_reach_no_param_tag_artifact_state_file_or_log(tmp_path, tiny_model_dir):
    """A credential in the tracking URI's user information, a token under an open section given as a
    raw override (`+experiment.hf_token`), a credential-like key in `model.arch`, and a failing cell
    whose log tail is logged. Afterwards the whole tree (output directory, a real `mlflow server`'s
    SQLite database and artifact store) is searched for every planted value."""
    tag = uuid.uuid4().hex[:10]
    password, token, arch_key = f"PLANTEDpw{tag}", f"hf_PLANTEDtok{tag}abcdefghijk", f"PLANTEDarch{tag}"
    port = free_port()
    server = tracking_server(tmp_path, port)
    uri = f"http://jsweep:{password}@127.0.0.1:{port}"
    plain = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _server_up(plain), timeout=90, what="the MLflow server")
        proc = run_jsweep(
            [
                "-m",
                "launcher.concurrency=2",  # two CPU cells at once (bookkeeping: no effect on the cells)
                "lr=1e-5,1e-4",
                f"+experiment.hf_token={token}",
                f"+model.arch.api_key={arch_key}",
                f"tracking.uri={uri}",
                *TINY,
            ],
            tmp_path,
            JSWEEP_FAULT="raise@1:lr=1e-05",
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-3000:]  # one cell failed on purpose: its log tail is logged
        from mlflow.tracking import MlflowClient

        client = MlflowClient(plain)
        runs = cell_runs(client)
        assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"], out[-3000:]
        failed = next(r for r in runs if r.info.status == "FAILED")
        assert "injected fault" in failed.data.tags["jsweep.log_tail"]
        # a cell failing mid-training: its error class recorded, the error on the console
        assert failed.data.tags["jsweep.error_class"] == "RuntimeError"
        assert "RuntimeError: injected fault at step 1" in proc.stdout, out[-3000:]
        assert runs and all(
            password not in v and token not in v and arch_key not in v
            for r in runs
            for v in (*r.data.params.values(), *r.data.tags.values())
        )
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert "+experiment.hf_token=***" in parent.data.params["grid"]
        assert "tracking.uri=http://***@127.0.0.1" in parent.data.params["grid"]
        finished = next(r for r in runs if r.info.status == "FINISHED")
        artifacts = {a.path for a in client.list_artifacts(finished.info.run_id)}
        assert {"config.yaml", "cell.log"} <= artifacts
    finally:
        stop_server(server)
    cells = cell_dirs(tmp_path)
    log = (cells[0] / "cell.log").read_text() + (cells[1] / "cell.log").read_text()
    assert "View run" in log and "http://***@127.0.0.1" in log  # MLflow's own line, masked
    multirun = next((tmp_path / "outputs" / "sweeps").glob("*/multirun.yaml")).read_text()
    assert "hf_token=***" in multirun
    leaks = _files_holding(tmp_path, [password, token, arch_key])
    assert not leaks, leaks
    assert not any(s in out for s in (password, token, arch_key)), "the console shows no secret either"


def test_redaction_masks_credentials_but_keeps_token_counts():
    from jsweep.redaction import redact, redact_text, restore, secrets_in

    assert redact_text("🏃 View run x at: http://u:pw123@host:5000/#/x") == "🏃 View run x at: http://***@host:5000/#/x"
    assert redact_text("+experiment.hf_token=abcdef lr=1e-4") == "+experiment.hf_token=*** lr=1e-4"
    assert redact_text('{"api_key": "zzzz1234", "n": 3}') == '{"api_key": "***", "n": 3}'
    assert redact_text("model.arch.pad_token_id=3 max_new_tokens=8") == "model.arch.pad_token_id=3 max_new_tokens=8"
    assert redact_text("pad_token: <pad> eos_token=</s>") == "pad_token: <pad> eos_token=</s>"
    cfg = {
        "model": {"arch": {"pad_token_id": 1, "secret_key": "s3cr3t"}},
        "tracking": {"uri": "http://u:p4ss@h"},
        "metrics": {"train/tokens_per_second": 3.0, "train/token_accuracy": 0.5},
    }
    clean = redact(cfg)
    assert clean["model"]["arch"] == {"pad_token_id": 1, "secret_key": "***"}
    assert clean["tracking"]["uri"] == "http://***@h" and clean["metrics"] == cfg["metrics"]
    uris = secrets_in(cfg, keys=False)
    assert uris == {"tracking.uri": "http://u:p4ss@h"} and restore(clean, uris)["tracking"]["uri"] == "http://u:p4ss@h"


# --------------------------------------------------------------------------- 2. exclusion


def _steps(client, run_id: str, key: str = "train/loss") -> list[int]:
    """Every logged step of a metric, duplicates kept."""
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _history_steps(cell: Path, key: str = "train/loss") -> list[int]:
    rows = [json.loads(line) for line in (cell / "history.jsonl").read_text().splitlines() if line.strip()]
    return sorted(r["step"] for r in rows if key in r)


def test_two_identical_sweeps_at_once_on_a_fresh_store_run_each_cell_once(tmp_path, mlflow_client_for, tiny_model_dir):
    grid = ["-m", "lr=1e-5,1e-4", "train.max_steps=3", "eval=[]"]
    procs = [
        popen_jsweep(grid, tmp_path, fresh_store=True) for _ in range(2)
    ]  # together, on a store that does not exist yet
    outs = [p.communicate(timeout=600)[0] for p in procs]
    both = "\n=====\n".join(outs)
    assert "alembic" not in both and "Traceback" not in both, both[-4000:]
    assert sorted(p.returncode for p in procs) in ([0, 1], [1, 1]), both[-4000:]
    assert "busy: already running in sweep" in both, both[-4000:]
    client = mlflow_client_for(tmp_path)
    runs = cell_runs(client)
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs), both[-4000:]
    assert len({r.data.tags["jsweep.cell_id"] for r in runs}) == 2
    for run in runs:
        assert _steps(client, run.info.run_id) == [1, 2, 3]
    for cell in cell_dirs(tmp_path):
        assert _history_steps(cell) == [1, 2, 3]
        assert (cell / "cell.log").read_text().count("[jsweep] done") == 1
    again = run_jsweep(grid, tmp_path)  # the store is healthy afterwards
    assert again.returncode == 0 and again.stdout.count("skip: already finished") == 2, again.stderr[-2000:]


# --------------------------------------------------------------------------- 3. crash consistency


def test_kill_9_of_the_launcher_orphan_cell_is_not_started_twice_and_stale_runs_are_closed(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    proc = popen_jsweep(FAST, tmp_path, JSWEEP_FAULT="sleep@4")
    wait_for(lambda: stalled_cell(tmp_path, "checkpoints/checkpoint-2/trainer_state.json"), what="the stall at step 4")
    cell = stalled_cell(tmp_path)
    cell_pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the launcher alone
    proc.wait(timeout=30)
    assert pid_alive(cell_pid)  # the cell lives on, in a session of its own
    client = mlflow_client_for(tmp_path)
    (run,) = cell_runs(client)
    first_parent = run.data.tags["mlflow.parentRunId"]

    again = run_jsweep(FAST, tmp_path)  # the orphan holds its cell's lock
    assert again.returncode == 1, again.stdout[-3000:]
    assert "busy: already running in sweep" in again.stdout and "(gone)" in again.stdout, again.stdout[-3000:]
    assert " start " not in again.stdout and " resume " not in again.stdout
    assert client.get_run(first_parent).info.status == "KILLED"  # the dead launcher's parent run
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # its cell still runs
    assert len(cell_runs(client)) == 1

    os.kill(cell_pid, signal.SIGUSR1)  # the orphan goes on, and finishes on its own
    wait_for(lambda: not pid_alive(cell_pid), timeout=300, what="the orphan cell to finish")
    assert json.loads((cell / "status.json").read_text())["status"] == "FINISHED", (cell / "cell.log").read_text()[
        -3000:
    ]
    assert "the launcher (pid" in (cell / "cell.log").read_text()
    (done,) = cell_runs(client)
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
    assert _steps(client, run.info.run_id) == [1, 2, 3, 4, 5, 6]
    last = run_jsweep(FAST, tmp_path)
    assert last.returncode == 0 and "skip: already finished" in last.stdout, last.stdout[-2000:]
    assert len(cell_runs(client)) == 1


def test_runs_left_running_by_a_dead_launcher_and_cell_are_marked_killed_then_resumed_in_the_same_run(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    proc = popen_jsweep(FAST, tmp_path, JSWEEP_FAULT="sleep@4")
    wait_for(lambda: stalled_cell(tmp_path, "checkpoints/checkpoint-2/trainer_state.json"), what="the stall at step 4")
    cell = stalled_cell(tmp_path)
    cell_pid = json.loads((cell / "status.json").read_text())["pid"]
    os.kill(proc.pid, signal.SIGKILL)  # the machine's OOM killer takes both
    os.kill(cell_pid, signal.SIGKILL)
    proc.wait(timeout=30)
    wait_for(lambda: not pid_alive(cell_pid), timeout=30, what="the cell to die")
    client = mlflow_client_for(tmp_path)
    (run,) = cell_runs(client)
    parent_id = run.data.tags["mlflow.parentRunId"]
    assert run.info.status == "RUNNING" and client.get_run(parent_id).info.status == "RUNNING"

    other = run_jsweep(["lr=3e-4", *TINY], tmp_path)  # any later sweep on the store closes them
    assert other.returncode == 0, other.stdout[-2000:]
    assert "ended without its launcher" in other.stdout
    for run_id in (parent_id, run.info.run_id):
        closed = client.get_run(run_id)
        assert closed.info.status == "KILLED" and closed.data.tags["jsweep.error_class"] == "LauncherDied"

    again = run_jsweep(FAST, tmp_path)  # and the cell resumes in its own run
    assert again.returncode == 0 and " resume " in again.stdout, again.stdout[-2000:]
    mine = [r for r in cell_runs(client) if r.data.tags["jsweep.cell_id"] == run.data.tags["jsweep.cell_id"]]
    assert [r.info.run_id for r in mine] == [run.info.run_id] and mine[0].info.status == "FINISHED"
    assert _steps(client, run.info.run_id) == [1, 2, 3, 4, 5, 6]


def test_a_cell_killed_while_evaluating_evaluates_its_saved_model_without_training_past_max_steps(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    args = [
        "train.max_steps=4",
        "train.checkpoint_steps=2",
        "train.delete_checkpoints=false",
        "eval=[llm_jp_eval]",
        # One short-answer task: the kill comes from a fault hook, not a race against the evaluation's length.
        "eval.llm_jp_eval.tasks=[jnli]",
        "eval.llm_jp_eval.max_num_samples=4",
    ]
    # The cell kills itself (SIGKILL) as evaluation starts, after its "evaluating: llm_jp_eval" line.
    proc = run_jsweep(args, tmp_path, JSWEEP_FAULT="sigkill@eval")
    assert proc.returncode == 1 and "killed by signal 9" in proc.stdout, proc.stdout[-3000:]
    (cell,) = cell_dirs(tmp_path)
    assert "evaluating: llm_jp_eval" in (cell / "cell.log").read_text()
    assert not (cell / "metrics.json").exists() or "llm_jp_eval/AVG_partial" not in (cell / "metrics.json").read_text()
    assert (cell / "checkpoints" / "checkpoint-4").is_dir()
    again = run_jsweep(args, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "trained and saved by an earlier attempt; evaluating it" in again.stdout
    client = mlflow_client_for(tmp_path)
    (run,) = cell_runs(client)
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["train/steps"] == 4 and "llm_jp_eval/AVG_partial" in metrics
    assert _steps(client, run.info.run_id) == [1, 2, 3, 4] and _history_steps(cell) == [1, 2, 3, 4]
    assert run.info.status == "FINISHED" and run.data.metrics["train/steps"] == 4


def test_a_launcher_error_closes_its_runs_and_the_rerun_reuses_them(tmp_path, mlflow_client_for, tiny_model_dir):
    grid = ["-m", "lr=1e-5,1e-4", *TINY]
    proc = run_jsweep(grid, tmp_path, JSWEEP_LAUNCHER_FAULT="enospc@2")  # the disk is full at the second cell
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("jsweep: error:")]
    assert "No space left on device" in line and "Run the same sweep again" in line
    client = mlflow_client_for(tmp_path)
    runs = cell_runs(client)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED" and parent.data.tags["jsweep.error_class"] == "OSError"
    again = run_jsweep(grid, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    after = cell_runs(client)
    assert len(after) == 2 and all(r.info.status == "FINISHED" for r in after)  # the killed run was re-used
    assert {r.info.run_id for r in after} == {r.info.run_id for r in runs}


def test_a_finished_cell_with_damaged_results_runs_again_and_a_corrupt_journal_line_is_skipped(
    tmp_path, mlflow_client_for, tiny_model_dir
):
    """One finished cell damaged three times in turn: its saved model removed, then its metrics file cut
    short (each time found and run again), then its tracking journal left with a line cut short (skipped
    with a warning at `jsweep sync`, the whole calls around it replayed)."""
    assert run_jsweep(TINY, tmp_path).returncode == 0
    (cell,) = cell_dirs(tmp_path)
    for damage in ("model", "metrics"):
        if damage == "model":
            import shutil

            shutil.rmtree(cell / "model")
        else:
            (cell / "metrics.json").write_text('{"train/loss": 1.2')
        again = run_jsweep(TINY, tmp_path)
        assert again.returncode == 0, again.stdout[-2000:]
        assert "results are damaged" in again.stdout and "skip" not in again.stdout, again.stdout[-2000:]
        assert (cell / "model" / "adapter_config.json").exists()
        assert isinstance(json.loads((cell / "metrics.json").read_text()), dict)
        runs = cell_runs(mlflow_client_for(tmp_path))
        complete = [r for r in runs if r.data.tags.get("jsweep.complete") == "true"]
        assert len(complete) == 1 and complete[0].info.status == "FINISHED", damage
        assert any(r.data.tags.get("jsweep.damaged") for r in runs)
    assert len(runs) == 3 and sum(1 for r in runs if r.data.tags.get("jsweep.damaged")) == 2

    # The finished cell's journal: what an outage followed by a kill mid-write leaves, whole calls around a
    # line cut short.
    journal = cell / "tracking_journal.jsonl"
    journal.write_text(
        json.dumps({"op": "set_tags", "tags": {"jsweep.note": "before"}})
        + "\n"
        + '{"op": "set_tags", "tags": {"jsweep.no'
        + "\n"
        + json.dumps({"op": "set_tags", "tags": {"jsweep.note2": "after"}})
        + "\n"
    )
    again = run_jsweep(TINY, tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    sync = run_jsweep(["sync"], tmp_path)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert f"{cell.name}/tracking_journal.jsonl: line 2 is not a whole tracking call, skipped" in sync.stderr
    runs = cell_runs(mlflow_client_for(tmp_path))
    assert len(runs) == 3  # no new run: the journal goes to the cell's run
    (run,) = [r for r in runs if r.data.tags.get("jsweep.complete") == "true"]
    assert run.info.run_id == complete[0].info.run_id
    assert run.data.tags["jsweep.note"] == "before" and run.data.tags["jsweep.note2"] == "after"
    assert not journal.exists()


# --------------------------------------------------------------------------- 4. pre-flight


def _bad_files(tmp: Path) -> dict[str, Path]:
    """Broken inputs, each beside a healthy copy of what it breaks."""
    from jsweep.eval.llm_jp_eval.evaluator import FIXTURE_DIR

    root = tmp / "bad"
    root.mkdir()
    latin1 = root / "dolly_latin1.json"  # a dolly record saved as Latin-1
    latin1.write_bytes(
        '[{"instruction": "caf\xe9", "input": "", "output": "x", "category": "open_qa"}]'.encode("latin-1")
    )
    deep = root / "dolly_deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    fifo = root / "dolly_fifo.json"
    os.mkfifo(fifo)
    import shutil

    array_dir = root / "llm_jp_array"
    shutil.copytree(FIXTURE_DIR, array_dir)
    task = sorted((array_dir / "evaluation" / "test").glob("*.json"))[0]
    task.write_text(json.dumps([json.loads(task.read_text(encoding="utf-8"))]), encoding="utf-8")
    latin_dir = root / "llm_jp_latin1"
    shutil.copytree(FIXTURE_DIR, latin_dir)
    task2 = sorted((latin_dir / "evaluation" / "test").glob("*.json"))[0]
    task2.write_bytes(task2.read_bytes() + b"\xe9")
    jglue = root / "jglue_bad"
    shutil.copytree(ROOT / "jsweep" / "fixtures" / "eval" / "jglue", jglue)
    jnli = sorted((jglue / "jnli").rglob("valid*.json"))[0]
    lines = jnli.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # a record cut in the middle
    jnli.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "latin1": latin1,
        "deep": deep,
        "fifo": fifo,
        "array": array_dir,
        "task_latin1": latin_dir,
        "task": task,
        "task2": task2,
        "jglue": jglue,
        "jnli": jnli,
    }


PREFLIGHT = [
    (["train.epochs=inf"], "train.epochs must be a positive finite number, got inf"),
    (["method.lora.dropout=1.5"], "method.lora.dropout must be in [0, 1), got 1.5"),
    (["train.scheduler=cosin"], "train.scheduler must be one of linear, cosine"),
    (["seed=-1"], "seed must be an integer in [0, 2**32), got -1"),
    (["model.arch.hidden_size=65"], "model.arch.hidden_size=65 is not divisible by model.arch.num_attention_heads="),
    (["eval.llm_jp_eval.batch_size=0"], "eval.llm_jp_eval.batch_size must be an integer >= 1 or auto, got 0"),
    (["eval.llm_jp_eval.num_few_shots=abc"], "eval.llm_jp_eval.num_few_shots must be an integer >= 0, got 'abc'"),
    (["eval.jglue.limit=many"], "eval.jglue.limit must be an integer >= 1 or null, got 'many'"),
    (["eval.llm_jp_eval.split=valid"], "eval.llm_jp_eval.split must be one of test, dev, got 'valid'"),
    (["tracking.uri=bogus://x"], "tracking.uri: unknown scheme 'bogus://'"),
    (["train.precision=bf16"], "train.precision=bf16 needs a GPU, and none is visible"),
    (["train.precision=fp16"], "train.precision=fp16 needs a GPU, and none is visible"),
    (["dataset.path={latin1}"], "{latin1}: not UTF-8 text"),
    (["dataset.path={deep}"], "{deep}: JSON nested 200000 levels deep"),
    (["dataset.path={fifo}"], "{fifo}: not a regular file"),
    (["eval.llm_jp_eval.data_dir={array}"], "{task}: expected a JSON object"),
    (["eval.llm_jp_eval.data_dir={task_latin1}"], "{task2}: not UTF-8 text"),
    (["eval.jglue.data_dir={jglue}"], "{jnli}: record line 2: not valid JSON"),
]


@pytest.fixture(scope="module")
def preflight_runs(tmp_path_factory) -> dict[tuple[str, ...], tuple[subprocess.CompletedProcess, Path, str]]:
    """Every PREFLIGHT case's CLI run, each in a directory of its own (with its broken files), two at a
    time (a CLI start-up is most of their time, and the cases share nothing): by the case's arguments,
    the run, its directory and the message it must show."""
    dirs = [tmp_path_factory.mktemp("preflight") for _ in PREFLIGHT]

    def run(i: int) -> tuple[subprocess.CompletedProcess, Path, str]:
        (args, message), tmp = PREFLIGHT[i], dirs[i]
        files = _bad_files(tmp) if any("{" in a for a in args) else {}
        names = {k: str(v) for k, v in files.items()}
        proc = run_jsweep(["-m", *(a.format(**names) for a in args)], tmp, timeout=120, fresh_store=True)
        return proc, tmp, message.format(**names)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(run, range(len(PREFLIGHT))))
    return {tuple(args): r for (args, _), r in zip(PREFLIGHT, runs)}


@pytest.mark.parametrize(
    "args,message", PREFLIGHT, ids=[a[0].split("=")[0] + "=" + a[0].split("=")[1][:12] for a, _ in PREFLIGHT]
)
def test_bad_values_and_files_are_refused_before_any_cell_starts(preflight_runs, args, message):
    proc, tmp_path, message = preflight_runs[tuple(args)]
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith("jsweep: error:") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert message in proc.stderr, proc.stderr[-2000:]
    assert [ln for ln in proc.stderr.splitlines() if message in ln], "named on one line"
    assert not (tmp_path / "mlflow.db").exists(), "no MLflow run may be created"
    assert not (tmp_path / "outputs").exists(), "nothing is left behind"


def test_an_unusable_output_root_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    proc = run_jsweep([f"output_root={tmp_path / 'a_file' / 'outputs'}"], tmp_path, timeout=120, fresh_store=True)
    assert proc.returncode == 2 and "is not a directory" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists()


# --------------------------------------------------------------------------- 5. planning at scale

GRID_CASES = [
    [],
    ["lr=1e-3"],
    ["method.lr=3e-4"],
    ["model.prompt_format=llmjp"],
    ["dataset=ichikara", "lr=2e-5"],
    ["train.max_steps=3", "seed=4"],
    ["+experiment.note=abc"],
    ["method.lr=1e-2", "model.prompt_format=llmjp"],
    ["method=dpo_lora", "dataset=hh_rlhf_ja", "method.beta=0.2"],
    ["eval=[llm_jp_eval]", "eval.llm_jp_eval.batch_size=4"],
    ["experiment=jaster_learning_curve", "dataset.n=100"],
    ["~train.packing"],
]


def test_the_grid_composer_gives_each_cell_the_config_hydra_composes(monkeypatch):
    """Planning composes the base config once per set of group choices and applies each cell's other
    overrides to it (benchmarks/plan_scale.py measures the time); the cells must be exactly what Hydra's
    full composition gives, in any order, the base config untouched between cells."""
    from omegaconf.errors import ConfigKeyError

    from jsweep.compose import GridComposer, compose, compose_spec
    from jsweep.errors import ConfigError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    grid = GridComposer(compose)
    for overrides in GRID_CASES + list(reversed(GRID_CASES)):
        try:
            expected = compose_spec(overrides)
        except (ConfigError, ConfigKeyError, Exception) as exc:
            with pytest.raises(type(exc)):
                grid.spec(overrides, overrides)
            continue
        assert grid.spec(overrides, overrides) == expected, overrides
