"""Preference loaders (hh-rlhf-12k-ja, chatbot-arena-ja, generic), pre-flight of DPO cells, rendering,
init_from loading, and DPO training on the tiny model (CPU)."""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest

from jsweep.data.load import load_examples, split_train_eval
from jsweep.data.records import Message, PreferenceExample, digest_examples
from jsweep.data.sources import FIXTURES
from jsweep.errors import DataError
from jsweep.schema import DatasetSpec
from jsweep.validate import validate_cell
from tests.support.paths import MALFORMED
from tests.support.specs import spec_for

INSTRUCT = FIXTURES / "instruct"


def load(loader, *, fixture=None, path=None, **kw):
    spec = DatasetSpec(
        name=loader,
        loader=loader,
        fixture=fixture,
        path=None if path is None else str(path),
        source="path" if path else "fixture",
        **kw,
    )
    return load_examples(spec, builtin_model=True)


@functools.cache
# --------------------------------------------------------------------------- loaders

def test_hh_rlhf_yields_prompt_turns_chosen_and_rejected():
    raw = [json.loads(line) for line in (INSTRUCT / "hh_rlhf_ja.jsonl").read_text().splitlines()]
    data = load("hh_rlhf", fixture="instruct/hh_rlhf_ja.jsonl")
    assert data.records == "preference" and len(data.examples) == 40
    first = data.examples[0]
    assert isinstance(first, PreferenceExample) and first.id == "1"
    assert first.prompt == [Message("user", "隣の家の犬が夜中にずっと吠えていて眠れません。どうしたらいいですか？")]
    assert (
        first.chosen == raw[0]["chosen"]
        and first.rejected == "犬が悪いので、犬に向かって大声で怒鳴れば静かになりますよ。"
    )
    multi = data.examples[32]
    assert [(m.role, m.content) for m in multi.prompt] == [
        ("user", "週末に一泊二日で旅行したいです。"),
        ("assistant", "いいですね！どのあたりへ行きたいか、移動手段や予算のご希望はありますか？"),
        ("user", "東京から電車で行ける温泉地がいいです。予算は一人三万円くらいです。"),
    ]
    assert multi.chosen.startswith("それなら箱根や熱海がおすすめです。") and multi.meta["turns"] == 2
    assert sum(len(e.prompt) > 1 for e in data.examples) == 8  # README: 8 multi-turn


def test_chatbot_arena_yields_prompt_chosen_rejected():
    data = load("chatbot_arena", fixture="instruct/chatbot_arena_ja.jsonl")
    ex = data.examples[1]
    assert ex.prompt == [Message("user", "「急いては事を仕損じる」の意味を教えてください。")]
    assert (
        ex.chosen.startswith("物事を急いで行うと、かえって失敗しやすい")
        and ex.rejected == "急いでいるときは、何をしてもうまくいくという意味です。"
    )
    assert len(data.examples) == 40 and ex.id == "2"


def test_generic_preference_with_field_map(tmp_path):
    f = tmp_path / "pairs.jsonl"
    rows = [
        {"qid": "a", "q": "質問A", "good": "良い答え", "bad": "悪い答え"},
        {
            "qid": "b",
            "q": [
                {"role": "user", "content": "一"},
                {"role": "assistant", "content": "二"},
                {"role": "user", "content": "三"},
            ],
            "good": "四",
            "bad": "五",
        },
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    data = load("preference", path=f, field_map={"prompt": "q", "chosen": "good", "rejected": "bad", "id": "qid"})
    a, b = data.examples
    assert (a.id, a.prompt, a.chosen, a.rejected) == ("a", [Message("user", "質問A")], "良い答え", "悪い答え")
    assert [m.role for m in b.prompt] == ["user", "assistant", "user"] and b.chosen == "四"
    preset = load("preference", fixture="instruct/chatbot_arena_ja.jsonl")
    assert digest_examples(preset.examples) == load("chatbot_arena", fixture="instruct/chatbot_arena_ja.jsonl").digest


@pytest.mark.parametrize(
    "loader, name, where, field, problem",
    [
        ("hh_rlhf", "hh_rlhf_bad.jsonl", "line 2", "conversations", "must end with a human turn"),
        ("chatbot_arena", "chatbot_arena_empty_prompt.jsonl", "line 2", "prompt", "empty text"),
    ],
)
def test_malformed_preference_records_name_file_line_and_field(loader, name, where, field, problem):
    with pytest.raises(DataError) as err:
        load(loader, path=MALFORMED / name)
    msg = str(err.value)
    assert str(MALFORMED / name) in msg and where in msg and f"field '{field}'" in msg and problem in msg, msg


def test_skip_counts_bad_preference_records():
    data = load("hh_rlhf", path=MALFORMED / "hh_rlhf_bad.jsonl", on_error="skip")
    assert [e.id for e in data.examples] == ["1", "5"]
    assert data.report.dropped == {
        "bad turns (conversations)": 1,
        "identical replies (rejected)": 1,
        "missing field (rejected)": 1,
    }
    assert any("line 3" in e and "identical" in e for e in data.report.errors)


def test_preference_digest_split_and_subset():
    data = load("hh_rlhf", fixture="instruct/hh_rlhf_ja.jsonl")
    changed = [dataclasses.replace(data.examples[0], rejected="別の答え"), *data.examples[1:]]
    assert digest_examples(changed) != data.digest
    train, held = split_train_eval(data.examples, 0.1, 0)
    assert len(held) == 4 and all(isinstance(e, PreferenceExample) for e in train + held)
    sub = load("hh_rlhf", fixture="instruct/hh_rlhf_ja.jsonl", n=10, seed=3)
    assert (
        len(sub.examples) == 10
        and sub.digest == load("hh_rlhf", fixture="instruct/hh_rlhf_ja.jsonl", n=10, seed=3).digest
    )


# --------------------------------------------------------------------------- pre-flight


def test_dpo_on_instruction_data_fails_preflight_in_one_line():
    problems = validate_cell(spec_for("method=dpo", "dataset=dolly", "eval=[]"))
    [line] = [p for p in problems if "preference" in p]
    assert "method 'dpo'" in line and "dataset 'dolly'" in line and "\n" not in line
    problems = validate_cell(spec_for("method=dpo_lora", "dataset=dolly_ichikara_oasst", "eval=[]"))
    assert any("method 'dpo_lora'" in p and "dataset 'dolly_ichikara_oasst'" in p for p in problems)


def test_sft_on_preference_only_data_fails_preflight():
    [line] = validate_cell(spec_for("method=sft_full", "dataset=hh_rlhf_ja", "eval=[]"))
    assert "method 'sft_full'" in line and "dataset 'hh_rlhf_ja'" in line and "method=dpo" in line


def test_dpo_method_values_are_checked(tmp_path):
    ok = spec_for("method=dpo_lora", "dataset=hh_rlhf_ja", "eval=[]")
    assert validate_cell(ok) == [] and ok.method.beta == 0.1 and ok.method.loss_type == "sigmoid"
    bad = spec_for(
        "method=dpo",
        "dataset=chatbot_arena_ja",
        "eval=[]",
        "method.beta=0",
        "method.loss_type=nope",
        f"method.init_from={tmp_path / 'missing'}",
    )
    problems = validate_cell(bad)
    assert any("method.beta" in p for p in problems) and any("method.loss_type" in p for p in problems)
    assert any("method.init_from: no such directory" in p for p in problems)
    (tmp_path / "empty").mkdir()
    assert any(
        "neither a model" in p
        for p in validate_cell(
            spec_for("method=dpo", "dataset=hh_rlhf_ja", "eval=[]", f"method.init_from={tmp_path / 'empty'}")
        )
    )


def test_sweep_plan_refuses_dpo_on_sft_data_before_launching():
    from jsweep.errors import PreflightError
    from jsweep.sweep import plan

    with pytest.raises(PreflightError, match="needs preference pairs"):
        plan([spec_for("method=dpo", "dataset=alpaca_ja", "eval=[]")])
    [cell] = plan([spec_for("method=dpo_lora", "dataset=hh_rlhf_ja", "eval=[]")])
    assert cell.data["records"] == "preference" and cell.data["n"] == 40


# --------------------------------------------------------------------------- rendering, init_from, training


@functools.cache
def tiny_tokenizer():
    from jsweep.models.load import load_tokenizer

    return load_tokenizer(spec_for("eval=[]").model, 0)


def test_render_preference_uses_the_cell_prompt_format_and_eos():
    from jsweep.job.dpo import render_preference

    tok = tiny_tokenizer()
    spec = spec_for("method=dpo_lora", "dataset=hh_rlhf_ja", "eval=[]")
    ex = PreferenceExample("x", [Message("user", "一"), Message("assistant", "二"), Message("user", "三")], "良", "悪")
    [row] = render_preference([ex], spec, tok)
    assert row["prompt"].endswith("### 指示:\n一\n\n### 応答:\n二\n\n### 指示:\n三\n\n### 応答:\n")
    assert row["chosen"] == "良" + tok.eos_token and row["rejected"] == "悪" + tok.eos_token
    chat = spec_for("method=dpo_lora", "dataset=hh_rlhf_ja", "eval=[]", "prompt.format=chat_template")
    [row] = render_preference([ex], chat, tok)
    assert row["prompt"].endswith("### 指示:\n三\n\n### 応答:\n")


def _run_dpo(tmp_path, *overrides):
    from jsweep import registries
    from jsweep.job.context import CellContext
    from jsweep.models.load import load_model

    spec = spec_for("dataset=hh_rlhf_ja", "eval=[]", "train.max_steps=2", "train.micro_batch_size=2", *overrides)
    assert validate_cell(spec) == []
    data = load_examples(spec.dataset, builtin_model=True)
    from tests.support.tracking import StoredRun

    run = StoredRun(tmp_path / "dpo")  # a real CellTracker on a temporary SQLite store
    ctx = CellContext(spec, run.cell_dir, run.tracker, "cpu")
    ctx.stored = run
    ctx.train, ctx.held_out = split_train_eval(data.examples, spec.train.eval_fraction, spec.seed)
    model = load_model(spec.model, device="cpu", seed=spec.seed, path=spec.method.init_from)
    result = registries.TRAINERS.get(spec.method.trainer)(ctx, model, tiny_tokenizer())
    return ctx, result


def test_dpo_lora_trains_on_the_tiny_model_and_saves_an_adapter(tmp_path):
    ctx, result = _run_dpo(tmp_path, "method=dpo_lora", "method.beta=0.2", "method.loss_type=ipo", "lr=1e-3")
    m = ctx.metrics
    assert m["train/steps"] == 2 and m["data/train_examples"] == 36 and m["data/eval_examples"] == 4
    assert "train/final_rewards_accuracy" in m and "eval/loss" in m and m["train/final_loss"] > 0
    assert (result.model_dir / "adapter_config.json").exists()
    run = ctx.stored  # what reached the store: every step, once
    for key in ("train/loss", "train/rewards_margin", "train/rewards_accuracy", "train/lr"):
        assert [step for step, _ in run.history(key)] == [1, 2], key
    assert [step for step, _ in run.history("eval/loss")] == [2]
    assert run.history("eval/loss")[0][1] == pytest.approx(m["eval/loss"])
    assert m["train/final_rewards_margin"] == pytest.approx(run.history("train/rewards_margin")[-1][1])
    assert m["train/final_loss"] == pytest.approx(sum(v for _, v in run.history("train/loss")) / 2, rel=1e-5)
    stored = ctx.stored.client.get_run(ctx.stored.run_id).data.metrics
    assert {k: stored[k] for k in m} == pytest.approx(m)


def test_load_model_merges_a_lora_adapter_from_init_from(tmp_path):
    import torch
    from peft import get_peft_model

    from jsweep.job.sft import lora_config
    from jsweep.models.load import is_adapter_dir, load_model

    spec = spec_for("method=dpo_lora", "dataset=hh_rlhf_ja", "eval=[]")
    base = load_model(spec.model, device="cpu", seed=0)
    peft_model = get_peft_model(load_model(spec.model, device="cpu", seed=0), lora_config(spec))
    torch.manual_seed(1)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)
    peft_model.save_pretrained(tmp_path / "adapter")
    expected = peft_model.merge_and_unload()
    assert is_adapter_dir(tmp_path / "adapter")
    merged = load_model(spec.model, device="cpu", seed=0, path=str(tmp_path / "adapter"))
    key = next(k for k in expected.state_dict() if "q_proj.weight" in k)
    assert torch.allclose(merged.state_dict()[key], expected.state_dict()[key], atol=1e-6)
    assert not torch.allclose(merged.state_dict()[key], base.state_dict()[key])
    assert all(p.requires_grad for p in merged.parameters())


def test_full_dpo_starts_from_an_sft_adapter(tmp_path):
    from jsweep.job.context import CellContext
    from jsweep.job.sft import train_sft
    from jsweep.models.load import load_model

    sft = spec_for("dataset=dolly", "eval=[]", "method=sft_lora", "train.max_steps=1", "lr=1e-2")
    from tests.support.tracking import StoredRun

    ctx = CellContext(sft, tmp_path / "sft", StoredRun(tmp_path / "sft-store").tracker, "cpu")
    (tmp_path / "sft").mkdir()
    ctx.train, ctx.held_out = split_train_eval(load_examples(sft.dataset, builtin_model=True).examples, 0.1, 0)
    adapter = train_sft(ctx, load_model(sft.model, device="cpu"), tiny_tokenizer()).model_dir
    ctx, result = _run_dpo(tmp_path, "method=dpo", f"method.init_from={adapter}", "dataset.budget=tokens:3000")
    assert ctx.metrics["train/steps"] == 2 and ctx.metrics["data/budget/tokens"] >= 3000
    assert (result.model_dir / "config.json").exists()
