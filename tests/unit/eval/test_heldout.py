"""The `heldout` evaluator: one held-out set shared by every cell, scored as the reply-token loss in the
cell's prompt format; its pre-flight; the report's interval over its records; the tiny model's pretraining."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from jsweep.compose import compose_spec
from jsweep.eval.heldout import FIXTURE, HeldOut, check, load_records
from tests.support.models import TINY_ARCH

RANDOM_TINY = {**TINY_ARCH, "pretrain_steps": 0}


def test_the_shared_fixture_is_in_no_training_fixture():
    from jsweep.data.sources import FIXTURES
    from jsweep.models.tiny import pretraining_corpus

    held = {r["output"] for r in json.loads(FIXTURE.read_text())}
    training = set()
    for path in (FIXTURES / "instruct").rglob("*.json*"):
        training.add(path.read_text())
    assert len(held) == 24 and not any(h in t for h in held for t in training)
    assert not held & set(pretraining_corpus())
    assert check({}) == [] and len(load_records({"path": None, "loader": "dolly"})) == 24
    assert "unknown option 'nope'" in check({"nope": 1})[0]


def test_heldout_loss_is_the_reply_token_loss_in_the_cells_format(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.data.formats import ALPACA_JA
    from jsweep.models.tiny import build_tiny

    model_dir = build_tiny(RANDOM_TINY)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    spec = compose_spec(["eval=[heldout]"])
    ctx = SimpleNamespace(spec=spec, cell_dir=tmp_path)
    metrics = HeldOut({"max_samples": 3, "batch_size": 2}).evaluate(ctx, model, tok)
    rows = [json.loads(l) for l in (tmp_path / "predictions" / "heldout.jsonl").read_text().splitlines()]
    assert metrics["heldout/samples"] == 3 and [r["id"] for r in rows] == ["0", "1", "2"]
    # reference: the model's own loss with the prompt masked out, one record at a time
    total_nll, total_tok = 0.0, 0
    for ex in load_records({"max_samples": 3}):
        prompt, reply = ALPACA_JA.render(ex)
        p = tok(prompt).input_ids
        r = tok(reply + tok.eos_token, add_special_tokens=False).input_ids
        ids = torch.tensor([p + r])
        labels = torch.tensor([[-100] * len(p) + r])
        with torch.no_grad():
            loss = float(model(input_ids=ids, labels=labels).loss)
        total_nll += loss * len(r)
        total_tok += len(r)
    assert metrics["heldout/tokens"] == total_tok
    assert metrics["heldout/loss"] == pytest.approx(total_nll / total_tok, rel=1e-5)


def test_heldout_splits_its_loss_into_the_reply_text_and_the_eos_that_ends_it(tmp_path):
    """heldout/text_loss (per reply token, EOS left out) and heldout/end_loss (the closing EOS, per record):
    each equals the model's own loss with only those tokens labelled, in a padded batch too."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.data.formats import ALPACA_JA
    from jsweep.models.tiny import build_tiny

    model_dir = build_tiny(RANDOM_TINY)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ctx = SimpleNamespace(spec=compose_spec(["eval=[heldout]"]), cell_dir=tmp_path)
    metrics = HeldOut({"max_samples": 5, "batch_size": 4}).evaluate(ctx, model, tok)  # a padded batch, then one
    rows = [json.loads(l) for l in (tmp_path / "predictions" / "heldout.jsonl").read_text().splitlines()]
    text_nll, text_tok, ends = 0.0, 0, []
    for ex in load_records({"max_samples": 5}):
        prompt, reply = ALPACA_JA.render(ex)
        p = tok(prompt).input_ids
        r = tok(reply + tok.eos_token, add_special_tokens=False).input_ids
        assert r[-1] == tok.eos_token_id
        ids = torch.tensor([p + r])
        with torch.no_grad():
            text = float(model(input_ids=ids, labels=torch.tensor([[-100] * len(p) + r[:-1] + [-100]])).loss)
            end = float(model(input_ids=ids, labels=torch.tensor([[-100] * (len(p) + len(r) - 1) + r[-1:]])).loss)
        text_nll += text * (len(r) - 1)
        text_tok += len(r) - 1
        ends.append(end)
    assert [r["end_nll"] for r in rows] == pytest.approx(ends, rel=1e-4)
    assert metrics["heldout/end_loss"] == pytest.approx(sum(ends) / len(ends), rel=1e-4)
    assert metrics["heldout/text_loss"] == pytest.approx(text_nll / text_tok, rel=1e-4)
    n, tokens = metrics["heldout/samples"], metrics["heldout/tokens"]
    assert n == 5 and tokens == text_tok + n
    whole = metrics["heldout/text_loss"] * (tokens - n) + metrics["heldout/end_loss"] * n
    assert whole == pytest.approx(metrics["heldout/loss"] * tokens, rel=1e-5)  # the two parts make the whole


def test_a_real_model_needs_its_own_heldout_set():
    from jsweep.eval.run import check_eval_data

    problems = check_eval_data(compose_spec(["model=llm-jp-3-1.8b", "eval=[heldout]"]))
    assert len(problems) == 1 and "set eval.heldout.path" in problems[0]
    assert (
        check_eval_data(compose_spec(["model=llm-jp-3-1.8b", "eval=[heldout]", f"eval.heldout.path={FIXTURE}"])) == []
    )


def test_the_report_bootstraps_heldout_records(tmp_path):
    from jsweep.eval.heldout import bootstrap_interval as bootstrap_heldout
    from jsweep.tools.report import CellResult

    (tmp_path / "predictions").mkdir()
    rows = [{"id": str(i), "nll": 2.0 * (1 + i % 3), "tokens": 2} for i in range(30)]
    (tmp_path / "predictions" / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cell = CellResult(0, "c", "x", "FINISHED", {}, {"heldout/loss": 2.0}, cell_dir=tmp_path)
    lo, hi = bootstrap_heldout(cell)
    assert lo < 2.0 < hi and hi - lo < 1.0


def test_pretraining_lowers_the_loss_and_is_cached_once_for_all_seeds(tmp_path, monkeypatch):
    from jsweep.models.tiny import build_tiny, tiny_key

    monkeypatch.setenv("JSWEEP_CACHE", str(tmp_path))
    arch = {**TINY_ARCH, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "pretrain_steps": 30}
    a = build_tiny(arch, seed=0)
    assert build_tiny(arch, seed=5) == a  # the training seed does not rebuild the base
    assert tiny_key(arch, 0) != tiny_key({**arch, "pretrain_steps": 0}, 0)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.models.tiny import pretraining_corpus

    tok = AutoTokenizer.from_pretrained(str(a))
    ids = torch.tensor([tok(pretraining_corpus()[0]).input_ids[:64]])
    raw = build_tiny({**arch, "pretrain_steps": 0}, seed=0)
    with torch.no_grad():
        trained = float(AutoModelForCausalLM.from_pretrained(str(a))(input_ids=ids, labels=ids).loss)
        untrained = float(AutoModelForCausalLM.from_pretrained(str(raw))(input_ids=ids, labels=ids).loss)
    assert trained < untrained - 0.5
