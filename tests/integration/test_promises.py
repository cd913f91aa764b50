"""The safety promises of the README tested directly (issue 21): what a cell's id depends on,
credential-like keys masked, retry limits, fail_fast, rerun by id prefix, the report switch, a
second Ctrl-C, and the run-wide mean training loss of a resumed cell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jsweep.job.sft import run_mean_loss
from tests.support.processes import FAST, pid_alive, popen_jsweep, stalled_cell, wait_for
from tests.support.specs import spec_for
from tests.support.sweeps import run_jsweep
from tests.support.tracking import cell_runs

# --------------------------------------------------------------------------- resume: train/final_loss

def test_final_loss_of_an_uninterrupted_run_is_the_trainers_own():
    assert run_mean_loss([{"loss": 9.0, "step": 1}], 0, 6, 4.25) == 4.25


def test_final_loss_of_a_resumed_run_averages_every_step_of_the_run():
    # Steps 1..6 with losses 6,5,4,3,2,1 (mean 3.5); resumed at checkpoint-2: this attempt's mean is 2.5.
    history = [{"loss": 6.0, "step": 1}, {"loss": 5.0, "step": 2}, {"eval_loss": 7.0, "step": 2}]
    assert run_mean_loss(history, 2, 6, 2.5) == pytest.approx(3.5, abs=1e-12)


def test_final_loss_weights_each_logged_loss_by_its_logging_interval():
    # logging_steps=2: step 2 logs the mean of steps 1-2 (5.5), step 4 of steps 3-4 (3.5); resumed at 4.
    history = [{"loss": 5.5, "step": 2}, {"loss": 3.5, "step": 4}, {"train_runtime": 1.0, "step": 4}]
    assert run_mean_loss(history, 4, 6, 1.5) == pytest.approx(3.5, abs=1e-12)
    # checkpoint at 3 (between two logs): step 3's loss is unknown, the mean is over steps 1-2 and 4-6
    assert run_mean_loss(history[:1], 3, 6, 2.0) == pytest.approx((5.5 * 2 + 2.0 * 3) / 5, abs=1e-12)


# --------------------------------------------------------------------------- cell identity

def _spec(*overrides: str):
    return spec_for("eval=[]", "train.max_steps=2", *overrides)


def _ids(*specs) -> list[str]:
    from jsweep.sweep import plan

    return [c.cell_id for c in plan(list(specs))]


def test_the_cell_id_follows_the_data_content_not_only_its_name(tmp_path):
    from jsweep.data.sources import FIXTURES

    records = json.loads((FIXTURES / "instruct" / "dolly_ja.json").read_text(encoding="utf-8"))
    first, second = tmp_path / "a" / "dolly.json", tmp_path / "b" / "dolly.json"
    for path, rows in ((first, records), (second, [{**records[0], "output": records[0]["output"] + "。"}, *records[1:]])):
        path.parent.mkdir()
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (a,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    (a_again,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    assert a.cell_id == a_again.cell_id
    first.write_text(json.dumps([{**records[0], "output": records[0]["output"] + "。"}, *records[1:]],
                                ensure_ascii=False), encoding="utf-8")     # one character of one answer changed
    (edited,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    assert edited.data["digest"] != a.data["digest"] and edited.cell_id != a.cell_id
    (b,) = _plan(_spec("dataset=dolly", f"dataset.path={second}"))
    assert b.data["digest"] == edited.data["digest"]                   # the digest is of the content


def _plan(*specs):
    from jsweep.sweep import plan

    return plan(list(specs))


def test_the_cell_id_follows_the_model_revision_and_every_result_changing_key():
    base, = _ids(_spec())
    changed = {
        "model.revision=0123abcd": _ids(_spec("model.revision=0123abcd"))[0],
        "lr=3e-4": _ids(_spec("lr=3e-4"))[0],
        "seed=1": _ids(_spec("seed=1"))[0],
        "data_seed=1": _ids(_spec("data_seed=1"))[0],
        "train.max_steps=3": _ids(_spec("train.max_steps=3"))[0],
        "prompt.format=llmjp": _ids(_spec("prompt.format=llmjp"))[0],
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed


def test_cosmetic_keys_do_not_change_the_cell_id(tmp_path):
    base, = _ids(_spec())
    for override in (f"output_root={tmp_path / 'elsewhere'}", "tracking.uri=sqlite:////tmp/other.db",
                     "launcher.fail_fast=true", "launcher.oom_retries=5", "launcher.report=false",
                     "train.logging_steps=5", "judge.model=another-judge"):
        assert _ids(_spec(override)) == [base], override


def test_the_cell_id_changes_with_the_jsweep_version(monkeypatch):
    import jsweep.identity

    base, = _ids(_spec())
    monkeypatch.setattr(jsweep.identity, "__version__", jsweep.identity.__version__ + ".post1")
    assert _ids(_spec()) != [base]


# --------------------------------------------------------------------------- redaction of credential-like keys

SECRET_KEYS = ["hf_token", "HF_TOKEN", "api_key", "api-key", "apikey", "openai_api_key", "secret", "client_secret",
               "password", "db_passwd", "passphrase", "credentials", "auth", "authorization", "private_key",
               "aws_access_key", "cookie", "session_key", "wandb.api_key", "+experiment.hf_token"]
NOT_SECRET_KEYS = ["pad_token_id", "eos_token", "bos_token", "max_new_tokens", "train/tokens", "tokens_per_second",
                   "token_accuracy", "tokenizer", "tokenizer_name", "token_dir", "auth_type", "author", "authors",
                   "max_toks", "secret_env", "num_tokens", "token_count", "credentials_path", "lr", "seed"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_credential_like_key_is_masked_in_structures_and_text(key):
    from jsweep.redaction import MASK, is_secret, redact, redact_text

    assert is_secret(key)
    assert redact({"section": {key: "v4lue-XYZ", "n": 3}}) == {"section": {key: MASK, "n": 3}}
    for text in (f"{key}=v4lue-XYZ lr=1e-4", f"{key}: v4lue-XYZ", f'{{"{key}": "v4lue-XYZ"}}'):
        assert "v4lue-XYZ" not in redact_text(text) and MASK in redact_text(text), text
    assert redact_text(f"{key}=v4lue-XYZ lr=1e-4").endswith(" lr=1e-4")


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_keys_about_tokens_or_places_are_kept(key):
    from jsweep.redaction import is_secret, redact, redact_text

    assert not is_secret(key, "12")
    assert redact({key: 12, "x": {key: "12"}}) == {key: 12, "x": {key: "12"}}
    assert redact_text(f"{key}=12 {key}: 12") == f"{key}=12 {key}: 12"


@pytest.mark.parametrize("value", ["hf_" + "a1B2" * 6, "sk-" + "Zz9_" * 6, "ghp_" + "x" * 24])
def test_token_shaped_values_are_masked_under_any_key(value):
    from jsweep.redaction import MASK, is_secret, redact, redact_text

    assert is_secret("note", value) and redact({"note": value}) == {"note": MASK}
    assert redact_text(f"using {value} now") == f"using {MASK} now"
    assert not is_secret("note", "hf_short")


def test_a_remembered_secret_is_masked_wherever_it_appears_later():
    import jsweep.redaction as R

    R.remember(["Rmbrd-9876-value", "abc"])            # too short values are not remembered (false positives)
    try:
        assert R.redact_text("echo Rmbrd-9876-value; x=Rmbrd-9876-value") == "echo ***; x=***"
        assert R.redact_text("abc abcdef") == "abc abcdef"
    finally:
        R.forget(["Rmbrd-9876-value"])


# --------------------------------------------------------------------------- the launcher's promises, real CLI

def _git_repo(path: Path) -> str:
    """Make ``path`` a git repository with one commit; its HEAD."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (path / "study.txt").write_text("the study's code\n")
    git("add", "study.txt")
    git("commit", "-qm", "study")
    return git("rev-parse", "HEAD")


def test_the_git_commit_tag_is_the_head_of_the_working_repository(tmp_path):
    from jsweep.tracking import git_commit

    assert git_commit(tmp_path) == "unknown"                   # not a repository
    head = _git_repo(tmp_path)
    assert len(head) == 40 and git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("outputs are not code\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "study.txt").write_text("edited\n")
    assert git_commit(tmp_path) == f"{head}-dirty"


def test_oom_retries_stop_at_the_limit_fail_fast_stops_launching_and_report_false_writes_none(
        tmp_path, mlflow_client_for, tiny_model_dir):
    head = _git_repo(tmp_path)
    args = ["-m", "lr=1e-5,1e-4", "train.max_steps=2", "eval=[]", "train.micro_batch_size=4", "train.grad_accum=1",
            "launcher.oom_retries=1", "launcher.fail_fast=true", "launcher.report=false"]
    proc = run_jsweep(args, tmp_path, JSWEEP_FAULT="oom*@1")   # out of memory on every attempt
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert out.count("out of memory; retry") == 1 and "retry 1/1 with micro_batch_size 4->2, grad_accum 1->2" in out
    assert "retry 2/" not in out
    assert "not started (launcher.fail_fast)" in out and "summary (0/2 finished)" in out, out[-3000:]
    assert "jsweep: report" not in out
    sweep_dirs = list((tmp_path / "outputs" / "sweeps").iterdir())
    assert sweep_dirs and not any((d / "report").exists() for d in sweep_dirs)
    runs = cell_runs(mlflow_client_for(tmp_path))
    assert len(runs) == 1                                      # the second cell never started
    (run,) = runs
    assert run.info.status == "FAILED" and run.data.tags["jsweep.error_class"] == "OutOfMemoryError"
    assert run.data.tags["jsweep.oom_retries"] == "1" and "jsweep.oom_retry.2" not in run.data.tags
    assert run.data.tags["jsweep.git_commit"] == head
    summary = json.loads(next(d / "summary.json" for d in sweep_dirs if (d / "summary.json").exists()).read_text())
    assert [(c["status"], c["error"]) for c in summary["cells"]] == [
        ("FAILED", summary["cells"][0]["error"]), ("NOT_RUN", "not started (launcher.fail_fast)")]
    assert summary["cells"][0]["error"].startswith("OutOfMemoryError")


def test_rerun_by_cell_id_prefix_runs_only_the_named_cells(tmp_path, mlflow_client_for, tiny_model_dir):
    grid = ["-m", "lr=1e-5,1e-4", "train.max_steps=1", "eval=[]"]
    first = run_jsweep(grid, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    client = mlflow_client_for(tmp_path)
    ids = {r.data.params["lr"]: r.data.tags["jsweep.cell_id"] for r in cell_runs(client)}
    assert sorted(ids) == ["0.0001", "1e-05"]
    target = ids["1e-05"]
    again = run_jsweep([*grid, f"launcher.rerun=['{target[:6]}']"], tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("rerun: previous results kept in") == 1
    assert again.stdout.count("skip: already finished") == 1
    replaced = sorted(p.name for p in (tmp_path / "outputs" / "cells").iterdir() if ".replaced-" in p.name)
    assert [name.split(".replaced-")[0] for name in replaced] == [target]
    assert sorted(r.data.tags["jsweep.cell_id"] for r in cell_runs(client)) == sorted([*ids.values(), target])


# --------------------------------------------------------------------------- a second Ctrl-C

def test_stop_signals_record_the_first_signal_and_ignore_the_next():
    import os
    import signal

    from jsweep.sweep import Stopped, StopSignals

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with StopSignals() as stops:
            stops.check()                                       # nothing yet
            os.kill(os.getpid(), signal.SIGINT)                 # no KeyboardInterrupt: recorded
            os.kill(os.getpid(), signal.SIGINT)                 # the second Ctrl-C: ignored
            os.kill(os.getpid(), signal.SIGTERM)                # and any other stop signal after the first
            assert stops.signum == signal.SIGINT
            with pytest.raises(Stopped):
                stops.check()
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # restored
        signal.signal(signal.SIGINT, signal.SIG_IGN)            # ignored before (nohup, a background job) ...
        with StopSignals() as stops:
            os.kill(os.getpid(), signal.SIGINT)
            assert stops.signum == 0                            # ... stays ignored
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_second_ctrl_c_during_the_clean_up_is_ignored(tmp_path, mlflow_client_for, tiny_model_dir):
    import os
    import signal

    proc = popen_jsweep(FAST, tmp_path, JSWEEP_FAULT="sleep@3")
    wait_for(lambda: stalled_cell(tmp_path), what="training to stall")
    cell = stalled_cell(tmp_path)
    pid = json.loads((cell / "status.json").read_text())["pid"]
    os.killpg(proc.pid, signal.SIGINT)                          # Ctrl-C ...
    import time

    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)                          # ... and, impatient, Ctrl-C again
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert out.count("interrupted; stopping 1 running cell(s)") == 1 and "KeyboardInterrupt" not in out, out[-3000:]
    assert json.loads((cell / "status.json").read_text())["status"] == "KILLED"
    (run,) = cell_runs(mlflow_client_for(tmp_path))
    assert run.info.status == "KILLED"
    summary = json.loads(next((tmp_path / "outputs" / "sweeps").rglob("summary.json")).read_text())
    assert [c["status"] for c in summary["cells"]] == ["KILLED"]
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the cell process to exit")


def test_the_cell_id_is_canonical_json_of_the_payload_whatever_the_key_order():
    """The id is the first 12 hex digits of sha256 over canonical JSON (keys sorted at every level,
    non-ASCII kept as UTF-8) of the config less its cosmetic keys, plus the jsweep version and the
    planner's extra inputs. Existing results are found by it, so its format is pinned here."""
    import hashlib
    from pathlib import PurePosixPath

    from jsweep import __version__
    from jsweep.identity import cell_id, identity_payload

    cfg = {"model": {"name": "ｔｉｎｙ", "revision": None}, "lr": 1e-4, "dataset": {"path": PurePosixPath("/d/x.json")},
           "train": {"max_steps": 2, "logging_steps": 5}, "launcher": {"fail_fast": True}, "output_root": "o"}
    extra = {"data": "abc123", "model_revision": None}
    want_payload = {"model": {"name": "ｔｉｎｙ", "revision": None}, "lr": 1e-4, "dataset": {"path": "/d/x.json"},
                    "train": {"max_steps": 2}, "jsweep_version": __version__, "extra": extra}
    assert identity_payload(cfg, extra) == want_payload
    blob = json.dumps(want_payload, sort_keys=True, ensure_ascii=False)
    assert cell_id(cfg, extra) == hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    reordered = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(list(cfg.items()))}
    assert cell_id(reordered, dict(reversed(list(extra.items())))) == cell_id(cfg, extra)
    assert cell_id({"lr": 1e-4}) == cell_id({"lr": 1e-4}) and len(cell_id({"lr": 1e-4})) == 12   # no train section
    assert cell_id({"train": {"max_steps": 2}}) == cell_id({"train": {"max_steps": 2, "logging_steps": 9}})
    assert cell_id(cfg) != cell_id(cfg, extra)


def test_only_the_last_segment_of_a_dotted_key_names_a_credential():
    from jsweep.redaction import is_secret_key

    assert is_secret_key("model.arch.hf_token") and is_secret_key("+experiment.api_key") and is_secret_key("~auth")
    assert not is_secret_key("section.password.lr")              # a section named like a credential: its keys stay
    assert not is_secret_key("+pad_token") and not is_secret_key("~eos_token") and not is_secret_key("++bos_token")


def test_redact_walks_lists_and_tuples_and_keeps_empty_values():
    from jsweep.redaction import MASK, redact

    cfg = {"a": [{"hf_token": "tok-12345", "n": 1}, "http://u:pw@h/x"], "b": ("plain", {"secret": "s-99999"}),
           "c": {"hf_token": "", "api_key": None}}
    assert redact(cfg) == {"a": [{"hf_token": MASK, "n": 1}, "http://***@h/x"], "b": ("plain", {"secret": MASK}),
                           "c": {"hf_token": "", "api_key": None}}
    assert isinstance(redact(cfg)["b"], tuple)


def test_secrets_in_names_every_secret_by_its_path():
    from jsweep.redaction import secrets_in

    cfg = {"a": {"hf_token": "tok-12345", "pad_token_id": 1, "empty_token": "", "none_token": None},
           "l": ["plain", "http://u:pw@h"], "auth": {"user": "x"}, "n": 3}
    assert secrets_in(cfg) == {"a.hf_token": "tok-12345", "l[1]": "http://u:pw@h"}
    assert secrets_in(cfg, keys=False) == {"l[1]": "http://u:pw@h"}
    assert secrets_in({"uri": "http://u:pw@h"}) == {"uri": "http://u:pw@h"}


def test_remembered_values_from_five_characters_longest_first():
    import jsweep.redaction as R

    R.remember(["abcde", "abcd", "Long-secret", "Long-secret-and-more"])
    try:
        assert R.redact_text("abcde abcd") == "*** abcd"
        assert R.redact_text("x=Long-secret-and-more!") == "x=***!"           # the longer one first, whole
    finally:
        for v in ("abcde", "Long-secret", "Long-secret-and-more"):
            R.forget([v])


def test_remembered_values_are_masked_longest_first_not_in_name_order():
    import jsweep.redaction as R

    R.remember(["zz-secret1", "Azz-secret1"])                  # the shorter one sorts after the longer one
    try:
        assert R.redact_text("k Azz-secret1 zz-secret1") == "k *** ***"
    finally:
        R.forget({"zz-secret1", "Azz-secret1"})


def test_restore_puts_secrets_back_at_their_paths_in_lists_too():
    from jsweep.redaction import redact, restore, secrets_in

    cfg = {"uris": ["http://u:pw1@h", "plain"], "m": {"hf_token": "tok-12345", "x": [1, {"api_key": "k-99999"}]}}
    assert restore(redact(cfg), secrets_in(cfg)) == cfg
    assert restore(redact(cfg), {}) == redact(cfg)


def test_secrets_handed_to_a_cell_are_remembered_and_the_console_is_redacted(monkeypatch):
    import io

    import jsweep.redaction as R

    monkeypatch.setenv(R.ENV, json.dumps({"tracking.uri": "http://user:PWenv777@host", "x.hf_token": "TOKenv8888"}))
    try:
        assert R.load_env_secrets() == {"tracking.uri": "http://user:PWenv777@host", "x.hf_token": "TOKenv8888"}
        assert R.redact_text("a PWenv777 b TOKenv8888") == "a *** b ***"
        sink = io.StringIO()
        stream = R.RedactingStream(sink)
        assert stream.write("View run at http://user:PWenv777@host/#/1\n") == len("View run at http://user:PWenv777@host/#/1\n")
        assert sink.getvalue() == "View run at ***/#/1\n" and stream.getvalue() == sink.getvalue()
        assert R.secret_values({"u": "http://user:PWenv777@host", "o": "+x.hf_token=TOKenv8888 lr=1"}) == [
            "user:PWenv777", "PWenv777", "TOKenv8888"]
    finally:
        R.forget({"user:PWenv777", "PWenv777", "TOKenv8888", "http://user:PWenv777@host"})
    monkeypatch.setenv(R.ENV, "not json")
    assert R.load_env_secrets() == {}
    monkeypatch.delenv(R.ENV)
    assert R.load_env_secrets() == {}


def test_cell_id_prefixes_reach_the_launcher_as_text():
    """Hydra reads 0123 as 123 and 12e4 as 120000.0; jsweep quotes launcher.rerun's prefixes first, and
    a comma-separated list is one setting, never a sweep axis."""
    from jsweep.compose import list_settings

    assert list_settings(["launcher.rerun=0123,12e4"]) == ["launcher.rerun=['0123','12e4']"]
    assert list_settings(["launcher.rerun=[ab,'0c']"]) == ["launcher.rerun=['ab','0c']"]
    assert list_settings(["launcher.rerun=true", "launcher.rerun=false"]) == ["launcher.rerun=true",
                                                                              "launcher.rerun=false"]
    from jsweep.compose import compose_spec

    spec = compose_spec(list_settings(["launcher.rerun=0123"]))
    assert list(spec.launcher.rerun) == ["0123"]
