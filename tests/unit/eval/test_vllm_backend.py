"""``eval.backend=vllm``: pre-flight without vLLM, the hand-over to vLLM, and default cells unchanged.

vLLM itself cannot run here (no GPU on this machine; the GPU machines have no network to install it).
The hand-over is tested against ``tests/support/vllm_standin/vllm``: a scripted STAND-IN with vllm 0.33.0's
signatures (``LLM``, ``LLM.generate``, ``SamplingParams``, ``TokensPrompt``, ``RequestOutput``) that loads
the directory jsweep saved with transformers and decodes greedily from the token ids it is given,
recording every call. It is put on the path by these tests only; it is not a vLLM anyone could use.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.paths import ROOT
from tests.support.sweeps import finish, run_jsweep, start_jsweep

STANDIN = ROOT / "tests" / "support" / "vllm_standin"
MISSING = "eval.backend=vllm: vLLM is not installed here (pip install vllm), or use eval.backend=transformers"
TASKS = "[jnli,jcommonsenseqa,jsts,jmmlu,mawps,jemhopqa]"


def _no_real_vllm() -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("a vllm package is installed in this environment: the missing-vLLM path cannot be shown")


# --------------------------------------------------------------------------- pre-flight


def test_a_sweep_asking_for_vllm_without_it_stops_with_one_line_before_anything_runs(tmp_path):
    _no_real_vllm()
    proc = run_jsweep(
        ["eval=[llm_jp_eval]", "eval.backend=vllm", "train.max_steps=1"], tmp_path, timeout=300, fresh_store=True
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[0].startswith("jsweep: error:"), proc.stderr
    assert proc.stderr.count(MISSING) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs" / "cells").exists()
    # without evaluators there is nothing to generate: no problem
    from jsweep.compose import compose_spec
    from jsweep.eval.run import check_evaluators

    assert check_evaluators(compose_spec(["eval=[]", "eval.backend=vllm"])) == []
    assert check_evaluators(compose_spec(["eval=[llm_jp_eval]", "eval.backend=vllm"])) == [MISSING]


def test_jsweep_eval_asking_for_vllm_without_it_stops_with_one_line(tmp_path, tiny_model_dir):
    _no_real_vllm()
    proc = run_jsweep(
        ["eval", str(tiny_model_dir), "eval=[llm_jp_eval]", "eval.backend=vllm"],
        tmp_path,
        timeout=300,
        fresh_store=True,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == f"jsweep eval: error: {MISSING}"
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs").exists()


def test_a_backend_outside_the_choices_is_named_by_its_config_key():
    from jsweep.compose import compose_spec
    from jsweep.validate import validate_cell

    assert "eval.backend must be one of transformers, vllm, got 'vlm'" in validate_cell(
        compose_spec(["eval=[]", "eval.backend=vlm"])
    )


# --------------------------------------------------------------------------- config and identity


def test_the_backend_is_not_an_evaluator_and_default_cells_keep_their_ids():
    from jsweep.compose import compose_spec
    from jsweep.identity import cell_id, identity_payload
    from jsweep.runview import cell_params
    from jsweep.schema import cell_from_dict

    default = compose_spec([])
    assert list(default.eval) == ["llm_jp_eval", "jglue", "heldout"] and default.eval_backend == "transformers"
    assert compose_spec(["eval=[]"]).eval == {} and list(compose_spec(["eval=[llm_jp_eval]"]).eval) == ["llm_jp_eval"]
    vllm = compose_spec(["eval.backend=vllm"])
    assert vllm.eval_backend == "vllm" and "backend" not in vllm.eval and list(vllm.eval) == list(default.eval)
    # the id of a default cell is what it was before the key existed (the dict without it) ...
    for spec in (default, compose_spec(["eval=[]"])):
        d = spec.to_dict()
        before = {k: v for k, v in d.items() if k != "eval_backend"}
        assert identity_payload(d) == identity_payload(before) and cell_id(d) == cell_id(before)
    # ... and the backend counts away from its default
    assert cell_id(vllm.to_dict()) != cell_id(default.to_dict())
    assert "eval_backend" in identity_payload(vllm.to_dict())
    # cell.json round trip (what the cell process reads), and the run's params
    assert cell_from_dict(json.loads(json.dumps(vllm.to_dict()))) == vllm
    assert cell_params(vllm.to_dict(), ["eval.backend"])["eval.backend"] == "vllm"
    assert cell_params(default.to_dict())["eval.backend"] == "transformers"


# --------------------------------------------------------------------------- the hand-over to (stand-in) vLLM


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The stand-in importable as ``vllm`` for one test, recording to a file; forgotten afterwards."""
    log = tmp_path / "vllm_calls.jsonl"
    monkeypatch.setenv("JSWEEP_VLLM_STANDIN_LOG", str(log))
    monkeypatch.syspath_prepend(str(STANDIN))
    yield log
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def _ctx(cell_dir: Path, seed: int) -> SimpleNamespace:
    """What the engine reads of a cell context: its spec's backend, seed and remote-code flag, its directory."""
    model = SimpleNamespace(trust_remote_code=False)
    return SimpleNamespace(
        spec=SimpleNamespace(eval_backend="vllm", seed=seed, model=model, eval={"x": {}}), cell_dir=cell_dir
    )


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def test_generate_hands_jsweeps_token_ids_to_vllm_and_returns_the_same_completions_in_order(
    standin, tiny_model_dir, tmp_path, capsys
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.eval.generate import Request, generate
    from jsweep.eval.vllm_engine import SAVED_DIR, active, backend

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompts = ["日本の首都はどこですか。", "次の文を英語に翻訳してください:こんにちは", "富士山の高さは", "猫"]
    requests = [Request(p, n) for p, n in zip(prompts, (6, 3, 9, 6))]
    expected = {flag: generate(model, tok, requests, add_special_tokens=flag, batch_size=1) for flag in (True, False)}
    ctx = _ctx(tmp_path, seed=3)
    capsys.readouterr()
    with backend(ctx, model, tok) as engine:
        assert active(model) is engine and active(object()) is None
        got = {flag: generate(model, tok, requests, add_special_tokens=flag, label="t") for flag in (True, False)}
        assert (tmp_path / SAVED_DIR / "config.json").exists()
    assert capsys.readouterr().out.count("[jsweep] t: 4/4 through vllm (") == 2  # the caller's label
    assert active(model) is None and not (tmp_path / SAVED_DIR).exists()  # stopped, copy deleted
    assert got == expected
    calls = _calls(standin)
    (start,) = [c for c in calls if c["call"] == "LLM"]  # one start for both batches
    assert start["dtype"] == "float32" and start["seed"] == 3 and start["model"] == start["tokenizer"]
    assert {"config.json", "generation_config.json", "tokenizer_config.json"} <= set(start["files"])
    sent = [c for c in calls if c["call"] == "generate"]
    want = [tok(r.prompt, add_special_tokens=flag).input_ids for flag in (True, False) for r in requests]
    assert [c["prompt_token_ids"] for c in sent] == want  # the same ids, in request order
    assert tok.bos_token_id is None or want[0][0] == tok.bos_token_id != want[len(requests)][0]
    for c, r in zip(sent, requests * 2):
        p = c["sampling_params"]
        assert p["temperature"] == 0.0 and p["n"] == 1 and p["max_tokens"] == r.max_new_tokens
        assert p["top_k"] == 0 and p["top_p"] == 1.0 and p["repetition_penalty"] == 1.0 and not p["stop"]
        assert c["use_tqdm"] is False


def _adapter(tiny_model_dir: Path, out: Path) -> Path:
    """A LoRA adapter over the tiny model whose weights change its outputs (B not zero), with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32")
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out


def _evals(model: Path, *runs: tuple[Path, tuple[str, ...], dict[str, str]]) -> list[tuple[dict, Path]]:
    """`jsweep eval` on ``model`` once per (directory, extra arguments, environment), all at the same time,
    each in a directory and store of its own; each run's metrics and output directory."""
    started = []
    for tmp, extra, env in runs:
        args = (
            "eval=[llm_jp_eval,samples]",
            f"eval.llm_jp_eval.tasks={TASKS}",
            "eval.llm_jp_eval.max_num_samples=4",
            "eval.samples.do_sample=false",
            "eval.samples.max_new_tokens=8",
            f"output_root={tmp / 'outputs'}",
            *extra,
        )
        started.append(start_jsweep(["eval", str(model), *args], tmp, **env))
    results = []
    for (tmp, _, _), proc in zip(runs, started):
        done = finish(proc, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        metrics = json.loads(done.stdout[done.stdout.index("{") : done.stdout.rindex("}") + 1])
        (out_dir,) = (tmp / "outputs" / "evals").iterdir()
        results.append((metrics, out_dir))
    return results


def test_jsweep_eval_through_vllm_scores_what_the_transformers_backend_scores(standin, tiny_model_dir, tmp_path):
    """The real CLI on a LoRA adapter (merged for vLLM) of the tiny model, fp32: same prompts and ids,
    same raw completions, same llm_jp_eval scores and samples answers as the default backend."""
    from transformers import AutoTokenizer

    adapter = _adapter(tiny_model_dir, tmp_path / "adapter")
    (tmp_path / "hf").mkdir()
    (tmp_path / "vllm").mkdir()
    # The two backends at once: their start-ups and model loads overlap on 2 cores.
    (hf_metrics, hf_dir), (v_metrics, v_dir) = _evals(
        adapter,
        (tmp_path / "hf", (), {}),
        (tmp_path / "vllm", ("eval.backend=vllm",), {"PYTHONPATH": f"{STANDIN}:{ROOT}"}),
    )
    hf_rows = [json.loads(x) for x in (hf_dir / "predictions" / "llm_jp_eval.jsonl").read_text().splitlines()]
    v_rows = [json.loads(x) for x in (v_dir / "predictions" / "llm_jp_eval.jsonl").read_text().splitlines()]
    assert len(v_rows) == 24 and [r["prompt"] for r in v_rows] == [r["prompt"] for r in hf_rows]
    assert [r["raw"] for r in v_rows] == [r["raw"] for r in hf_rows]
    scores = {k: v for k, v in hf_metrics.items() if k.startswith("llm_jp_eval/")}
    assert scores and {k: v_metrics[k] for k in scores} == scores
    answers = [json.loads(x)["answer"] for x in (hf_dir / "samples" / "answers.jsonl").read_text().splitlines()]
    assert (
        answers
        and [json.loads(x)["answer"] for x in (v_dir / "samples" / "answers.jsonl").read_text().splitlines()] == answers
    )
    assert any(a for a in answers) and any(r["raw"] for r in hf_rows)  # something was generated

    calls = _calls(standin)
    starts = [c for c in calls if c["call"] == "LLM"]
    assert len(starts) == 2  # one per generating evaluator; the model saved once
    assert all("adapter_config.json" not in c["files"] and "model.safetensors" in c["files"] for c in starts)
    assert {c["dtype"] for c in starts} == {"float32"}
    sent = [c for c in calls if c["call"] == "generate"]
    tok = AutoTokenizer.from_pretrained(str(adapter))
    assert [c["prompt_token_ids"] for c in sent[:24]] == [
        tok(r["prompt"], add_special_tokens=False).input_ids for r in v_rows
    ]  # llm_jp_eval: no BOS (v1.4.1)
    assert all(c["sampling_params"]["temperature"] == 0.0 for c in sent)
    assert not (v_dir / "vllm_model").exists()  # the merged copy is deleted after evaluation
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'vllm' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("jsweep").experiment_id])
    assert run.data.params["eval.backend"] == "vllm"


def test_sampled_answers_go_to_vllm_with_each_answers_seed(standin, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.eval.answers import generate_answers
    from jsweep.eval.vllm_engine import backend

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ctx = _ctx(tmp_path, seed=0)
    options = {
        "max_new_tokens": 5,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "seed": 10,
    }
    with backend(ctx, model, tok):
        first = generate_answers(model, tok, ["猫", "犬", "鳥"], options)
        again = generate_answers(model, tok, ["猫", "犬", "鳥"], options)
    assert first == again and len(first) == 3  # reproducible: each answer has its own seed
    sent = [c for c in _calls(standin) if c["call"] == "generate"][:3]
    assert [c["sampling_params"]["seed"] for c in sent] == [10, 11, 12]
    assert all(
        c["sampling_params"]["temperature"] == 0.7
        and c["sampling_params"]["top_k"] == 40
        and c["sampling_params"]["top_p"] == 0.9
        and c["sampling_params"]["repetition_penalty"] == 1.1
        and c["sampling_params"]["max_tokens"] == 5
        for c in sent
    )
    assert [c["prompt_token_ids"] for c in sent] == [tok(p).input_ids for p in ["猫", "犬", "鳥"]]


def test_the_copy_vllm_loads_is_the_merged_model_and_the_cells_model_is_untouched(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from jsweep.eval.vllm_engine import dtype_name, save_for_vllm

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32")
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    ids = torch.tensor([tok("日本の首都は東京です。").input_ids])
    with torch.no_grad():
        before = model(ids).logits
    saved = save_for_vllm(model, tok, tmp_path / "copy")
    assert not (saved / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(saved), dtype="float32").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, before, rtol=1e-4, atol=1e-4)  # the adapter is in it
        assert torch.equal(model(ids).logits, before)  # the cell's model as it was
        with model.disable_adapter():
            assert not torch.allclose(model(ids).logits, before, atol=1e-3)  # the adapter matters
    assert hasattr(model, "peft_config") and not any(getattr(m, "merged", False) for m in model.modules())
    gen = GenerationConfig.from_pretrained(str(saved))
    assert gen.eos_token_id == tok.eos_token_id and gen.bos_token_id == tok.bos_token_id
    assert AutoTokenizer.from_pretrained(str(saved))("猫").input_ids == tok("猫").input_ids
    # a LoRA model over bfloat16 weights keeps its adapters in float32: vLLM gets the base's dtype
    bf16 = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16),
        LoraConfig(r=4, target_modules=["q_proj"]),
    )
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16, torch.float32} and dtype_name(bf16) == "bfloat16"


def test_jglue_keeps_the_transformers_model_under_the_vllm_backend(standin, tiny_model_dir, tmp_path):
    """JSQuAD's engine generation runs inside the harness, between log-likelihood requests on the same
    model: it stays on the transformers engine, so vLLM is never started and the answers are unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsweep.eval.jglue import evaluator as jglue
    from jsweep.eval.vllm_engine import backend
    from jsweep.tracking import NullTracker

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    answers = {}
    for name in ("transformers", "vllm"):
        ctx = _ctx(tmp_path / name, seed=0)
        ctx.tracker, ctx.device = NullTracker(), "cpu"
        ctx.spec.tracking = SimpleNamespace(log_predictions=False)
        ctx.spec.eval_backend = name
        with backend(ctx, model, tok):
            metrics = jglue.JGlueEval(
                {"tasks": ["jsquad"], "marc_ja": False, "generation": "engine", "limit": 4}
            ).evaluate(ctx, model, tok)
        rows = (tmp_path / name / "predictions" / "jglue.jsonl").read_text().splitlines()
        answers[name] = (metrics, [json.loads(r)["raw"] for r in rows])
    assert len(answers["vllm"][1]) == 4 and answers["vllm"] == answers["transformers"]
    assert _calls(standin) == []
