"""What a cell's id depends on (a README promise): the data's content, the model revision and every
result-changing key, the jsweep version, not the cosmetic keys; the id's format is pinned; rerun prefixes
reach the launcher as text (split from tests/integration/test_promises.py)."""

from __future__ import annotations

import json

from tests.support.specs import spec_for


def _spec(*overrides: str):
    return spec_for("eval=[]", "train.max_steps=2", *overrides)


def _ids(*specs) -> list[str]:
    from jsweep.sweep import plan

    return [c.cell_id for c in plan(list(specs))]


def test_the_cell_id_follows_the_data_content_not_only_its_name(tmp_path):
    from jsweep.data.sources import FIXTURES

    records = json.loads((FIXTURES / "instruct" / "dolly_ja.json").read_text(encoding="utf-8"))
    first, second = tmp_path / "a" / "dolly.json", tmp_path / "b" / "dolly.json"
    for path, rows in (
        (first, records),
        (second, [{**records[0], "output": records[0]["output"] + "。"}, *records[1:]]),
    ):
        path.parent.mkdir()
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (a,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    (a_again,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    assert a.cell_id == a_again.cell_id
    first.write_text(
        json.dumps([{**records[0], "output": records[0]["output"] + "。"}, *records[1:]], ensure_ascii=False),
        encoding="utf-8",
    )  # one character of one answer changed
    (edited,) = _plan(_spec("dataset=dolly", f"dataset.path={first}"))
    assert edited.data["digest"] != a.data["digest"] and edited.cell_id != a.cell_id
    (b,) = _plan(_spec("dataset=dolly", f"dataset.path={second}"))
    assert b.data["digest"] == edited.data["digest"]  # the digest is of the content


def _plan(*specs):
    from jsweep.sweep import plan

    return plan(list(specs))


def test_the_cell_id_follows_the_model_revision_and_every_result_changing_key():
    (base,) = _ids(_spec())
    changed = {
        "model.revision=0123abcd": _ids(_spec("model.revision=0123abcd"))[0],
        "lr=3e-4": _ids(_spec("lr=3e-4"))[0],
        "seed=1": _ids(_spec("seed=1"))[0],
        "data_seed=1": _ids(_spec("data_seed=1"))[0],
        "train.max_steps=3": _ids(_spec("train.max_steps=3"))[0],
        "prompt.format=llmjp": _ids(_spec("prompt.format=llmjp"))[0],
        "train.dropout=0": _ids(_spec("train.dropout=0"))[0],
        "train.dropout=0.1": _ids(_spec("train.dropout=0.1"))[0],
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed


def test_cosmetic_keys_do_not_change_the_cell_id(tmp_path):
    (base,) = _ids(_spec())
    for override in (
        f"output_root={tmp_path / 'elsewhere'}",
        "tracking.uri=sqlite:////tmp/other.db",
        "launcher.fail_fast=true",
        "launcher.oom_retries=5",
        "launcher.report=false",
        "train.logging_steps=5",
        "judge.model=another-judge",
    ):
        assert _ids(_spec(override)) == [base], override


def test_the_cell_id_changes_with_the_jsweep_version(monkeypatch):
    import jsweep.identity

    (base,) = _ids(_spec())
    monkeypatch.setattr(jsweep.identity, "__version__", jsweep.identity.__version__ + ".post1")
    assert _ids(_spec()) != [base]


def test_the_cell_id_is_canonical_json_of_the_payload_whatever_the_key_order():
    """The id is the first 12 hex digits of sha256 over canonical JSON (keys sorted at every level,
    non-ASCII kept as UTF-8) of the config less its cosmetic keys, plus the jsweep version and the
    planner's extra inputs. Existing results are found by it, so its format is pinned here."""
    import hashlib
    from pathlib import PurePosixPath

    from jsweep import __version__
    from jsweep.identity import cell_id, identity_payload

    cfg = {
        "model": {"name": "ｔｉｎｙ", "revision": None},
        "lr": 1e-4,
        "dataset": {"path": PurePosixPath("/d/x.json")},
        "train": {"max_steps": 2, "logging_steps": 5},
        "launcher": {"fail_fast": True},
        "output_root": "o",
    }
    extra = {"data": "abc123", "model_revision": None}
    want_payload = {
        "model": {"name": "ｔｉｎｙ", "revision": None},
        "lr": 1e-4,
        "dataset": {"path": "/d/x.json"},
        "train": {"max_steps": 2},
        "jsweep_version": __version__,
        "extra": extra,
    }
    assert identity_payload(cfg, extra) == want_payload
    blob = json.dumps(want_payload, sort_keys=True, ensure_ascii=False)
    assert cell_id(cfg, extra) == hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
    reordered = {
        k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(list(cfg.items()))
    }
    assert cell_id(reordered, dict(reversed(list(extra.items())))) == cell_id(cfg, extra)
    assert cell_id({"lr": 1e-4}) == cell_id({"lr": 1e-4}) and len(cell_id({"lr": 1e-4})) == 12  # no train section
    assert cell_id({"train": {"max_steps": 2}}) == cell_id({"train": {"max_steps": 2, "logging_steps": 9}})
    assert cell_id(cfg) != cell_id(cfg, extra)


def test_cell_id_prefixes_reach_the_launcher_as_text():
    """Hydra reads 0123 as 123 and 12e4 as 120000.0; jsweep quotes launcher.rerun's prefixes first, and
    a comma-separated list is one setting, never a sweep axis."""
    from jsweep.compose import list_settings

    assert list_settings(["launcher.rerun=0123,12e4"]) == ["launcher.rerun=['0123','12e4']"]
    assert list_settings(["launcher.rerun=[ab,'0c']"]) == ["launcher.rerun=['ab','0c']"]
    assert list_settings(["launcher.rerun=true", "launcher.rerun=false"]) == [
        "launcher.rerun=true",
        "launcher.rerun=false",
    ]
    from jsweep.compose import compose_spec

    spec = compose_spec(list_settings(["launcher.rerun=0123"]))
    assert list(spec.launcher.rerun) == ["0123"]


def test_a_key_added_later_counts_only_away_from_its_default():
    """train.dropout arrived after cells existed: at its default (null, the model's own dropout) it is left
    out of the payload, so every earlier cell keeps its id; set, it counts (see the test above)."""
    from jsweep.identity import cell_id, identity_payload

    before = {"lr": 1e-4, "train": {"max_steps": 2}}
    after = {"lr": 1e-4, "train": {"max_steps": 2, "dropout": None}}
    assert identity_payload(after)["train"] == {"max_steps": 2}
    assert cell_id(after) == cell_id(before)
    assert cell_id({"lr": 1e-4, "train": {"max_steps": 2, "dropout": 0.0}}) != cell_id(before)
