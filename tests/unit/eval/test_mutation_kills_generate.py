"""The generation engine against plain Hugging Face generation and known answers (issue 21: what the
mutants of jsweep/eval/generate.py showed unchecked): completions equal transformers' own greedy
``generate`` one prompt at a time, mixed output lengths come back in request order, the GPU batch
planner's token budget by hand, what counts as out of memory, the progress lines."""

from __future__ import annotations

import re
import time
import types

import pytest

from jsweep.eval import generate as G
from jsweep.eval.generate import BatchPlanner, Progress, Request, generate

PROMPTS = [
    "質問：日本の首都はどこですか？\n回答：",
    "今日は",
    "次の文を英語に訳してください。\n猫が好きです。",
    "前提：男の子が走っている。\n仮説：子供が動いている。\n関係：",
    "1+1=",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(str(tiny_model_dir))


def reference(model, tok, prompt: str, max_new: int, add_special_tokens: bool = True) -> str:
    """transformers' own greedy decoding of one prompt, no padding, no batching: the reference."""
    import torch

    ids = torch.tensor([tok(prompt, add_special_tokens=add_special_tokens).input_ids])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            num_beams=1,
            pad_token_id=tok.pad_token_id or tok.eos_token_id,
        )
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_completions_equal_transformers_greedy_generate_in_request_order(tiny):
    model, tok = tiny
    requests = [Request(p, n) for p, n in zip(PROMPTS, [3, 6, 3, 6, 4])]  # mixed lengths, interleaved
    expected = [reference(model, tok, r.prompt, r.max_new_tokens) for r in requests]
    assert generate(model, tok, requests) == expected  # special tokens (BOS) added
    assert generate(model, tok, requests, batch_size=2) == expected
    assert (
        all(
            len(tok(text, add_special_tokens=False).input_ids) <= r.max_new_tokens
            for text, r in zip(expected, requests)
        )
        and len(set(expected)) > 1
    )
    plain = [reference(model, tok, r.prompt, r.max_new_tokens, add_special_tokens=False) for r in requests]
    assert generate(model, tok, requests, add_special_tokens=False) == plain
    assert plain != expected  # the BOS token matters


def test_shared_prefix_rows_equal_the_reference(tiny):
    model, tok = tiny
    head = "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n" * 4
    requests = [Request(head + tail, 5) for tail in ("りんご", "東京都の人口は", "猫")]
    ids = [tok(r.prompt, add_special_tokens=False).input_ids for r in requests]
    assert G.shared_prefix_length(ids) >= G.MIN_SHARED_PREFIX  # the prefix path runs
    expected = [reference(model, tok, r.prompt, 5, add_special_tokens=False) for r in requests]
    assert generate(model, tok, requests, add_special_tokens=False, share_prefix=True) == expected


def test_no_requests_no_work_and_a_missing_pad_token_becomes_eos(tiny):
    model, tok = tiny
    assert generate(None, None, []) == []  # nothing is touched, not even the model
    import copy

    tok2 = copy.deepcopy(tok)
    tok2.pad_token = None
    requests = [Request(p, 4) for p in PROMPTS[:3]]
    assert generate(model, tok2, requests, batch_size=3) == [reference(model, tok, r.prompt, 4) for r in requests]
    assert tok2.pad_token == tok2.eos_token


def test_generate_kwargs_reach_model_generate(tiny):
    model, tok = tiny
    seen = []
    original = model.generate

    def spy(*args, **kwargs):
        seen.append(
            {k: kwargs[k] for k in ("max_new_tokens", "do_sample", "num_beams", "repetition_penalty") if k in kwargs}
        )
        return original(*args, **kwargs)

    model.generate = spy
    try:
        generate(model, tok, [Request("今日は", 2)], generate_kwargs={"repetition_penalty": 1.0})
    finally:
        del model.generate
    assert seen == [{"max_new_tokens": 2, "do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}]


# --------------------------------------------------------------------------- out of memory


def _failing(model, message: str, over: int):
    original, sizes = model.generate, []

    def generate_or_fail(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        sizes.append(rows)
        if rows > over:
            raise RuntimeError(message)
        return original(*args, **kwargs)

    model.generate = generate_or_fail
    return sizes


def test_a_runtime_error_saying_out_of_memory_is_one(tiny, capsys):
    model, tok = tiny
    requests = [Request(p, 3) for p in PROMPTS[:4]]
    expected = [reference(model, tok, r.prompt, 3) for r in requests]
    sizes = _failing(model, "CUDA error: Out Of Memory while allocating", over=1)  # any case
    try:
        assert generate(model, tok, requests, batch_size=4, label="jglue") == expected
    finally:
        del model.generate
    assert sizes[:3] == [4, 2, 1] and set(sizes[3:]) == {1}
    out = capsys.readouterr().out
    assert "[jsweep] jglue: out of memory with 4 rows; retrying with 2\n" in out
    assert "[jsweep] jglue: out of memory with 2 rows; retrying with 1\n" in out


def test_other_errors_and_an_oom_of_one_row_are_raised(tiny):
    model, tok = tiny
    requests = [Request(p, 3) for p in PROMPTS[:2]]
    sizes = _failing(model, "device-side assert triggered", over=0)
    try:
        with pytest.raises(RuntimeError, match="device-side assert"):
            generate(model, tok, requests, batch_size=2)
    finally:
        del model.generate
    assert sizes == [2]  # not retried
    sizes = _failing(model, "out of memory", over=0)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            generate(model, tok, requests, batch_size=2)
    finally:
        del model.generate
    assert sizes == [2, 1]  # halved down to one row, then given up


# --------------------------------------------------------------------------- the GPU batch planner


class _Param:
    device = types.SimpleNamespace(type="cuda")

    def element_size(self) -> int:
        return 2  # bf16


def _gpu_model(**config):
    cfg = types.SimpleNamespace(**config)
    return types.SimpleNamespace(config=cfg, parameters=lambda: iter([_Param()]))


def test_the_token_budget_is_what_free_gpu_memory_holds(monkeypatch):
    import torch

    free = 40 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    # llm-jp-3-1.8b: 24 layers, 16 heads (no GQA), hidden 2048, MLP 7168, bf16. Per token: K and V of every
    # layer, 2 x 24 x 16 x 128 x 2 = 196608 bytes, and activations 4 x (2048 + 7168) x 2 = 73728 bytes.
    planner = BatchPlanner(
        _gpu_model(
            num_hidden_layers=24,
            num_attention_heads=16,
            num_key_value_heads=16,
            hidden_size=2048,
            intermediate_size=7168,
            head_dim=128,
        )
    )
    per_token = 196608 + 73728
    assert planner.token_budget == int(0.7 * free / per_token) == 111_212
    assert planner.max_rows == G.GPU_MAX_ROWS == 256
    assert planner.rows(1000) == 111 and planner.rows(10) == 256 and planner.rows(10**6) == 1
    assert planner.rows(0) == 256  # no division by zero
    assert planner.shrink(111) == 55 and planner.token_budget == 55_606


def test_the_token_budget_reads_defaults_and_text_configs(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**9, 2 * 10**9))
    # nothing in the config: 24 layers, 16 heads, kv heads = heads, hidden 2048, head_dim 128, MLP 8192
    per_token = 2 * 24 * 16 * 128 * 2 + 4 * (2048 + 8192) * 2
    assert BatchPlanner(_gpu_model()).token_budget == int(0.7 * 10**9 / per_token)
    # GQA (8 kv heads of 32), head_dim from hidden / heads, kv heads None = heads, under get_text_config
    text = types.SimpleNamespace(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=None,
        hidden_size=64,
        intermediate_size=100,
        head_dim=None,
    )
    wrapped = _gpu_model(get_text_config=lambda: text, num_hidden_layers=99)
    assert BatchPlanner(wrapped).token_budget == int(0.7 * 10**9 / (2 * 2 * 4 * 16 * 2 + 4 * (64 + 100) * 2))
    gqa = _gpu_model(
        num_hidden_layers=1, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096, intermediate_size=0
    )
    assert BatchPlanner(gqa).token_budget == int(0.7 * 10**9 / (2 * 1 * 8 * 128 * 2 + 4 * 4096 * 2))
    fixed = BatchPlanner(_gpu_model(), 8)  # a fixed batch size asks no memory
    assert fixed.token_budget is None and fixed.max_rows == 8 and fixed.rows(10**6) == 8
    assert BatchPlanner(_gpu_model(), None).token_budget is not None  # None is "auto"
    with pytest.raises(ValueError, match=r"^batch_size must be a positive integer or 'auto', got -1$"):
        BatchPlanner(_gpu_model(), -1)


def test_shrink_without_a_token_budget_halves_the_rows(tiny):
    model, _ = tiny
    planner = BatchPlanner(model, "auto")
    assert planner.shrink(7) == 3 and planner.max_rows == 3 and planner.token_budget is None
    assert planner.rows(50) == 3


def test_a_prefix_of_exactly_the_minimum_is_shared():
    n = G.MIN_SHARED_PREFIX
    assert G.shared_prefix_length([[7] * n + [1], [7] * n + [2]]) == n
    assert G.shared_prefix_length([[7] * (n - 1) + [1], [7] * (n - 1) + [2]]) == 0
    assert G.shared_prefix_length([[7] * n + [1], [7] * n + [2], [7] * 5 + [3] * 40]) == 0  # one row differs early


# --------------------------------------------------------------------------- progress lines


def test_progress_lines_every_interval_and_at_the_end():
    lines: list[str] = []
    p = Progress("llm_jp_eval", 10)
    p.say = lines.append
    p.update(2)
    assert lines == []  # within the interval, not done
    p.t0 -= 20.0
    p.last = time.monotonic() - 10.05  # 10 s since the last line (the default interval)
    p.update(3)
    assert len(lines) == 1 and re.fullmatch(r"llm_jp_eval: 5/10 \(0\.2/s, ~20s left\)", lines[0]), lines
    p.update(4)
    assert len(lines) == 1  # the interval starts again
    p.update(1)
    assert len(lines) == 2 and re.fullmatch(r"llm_jp_eval: 10/10 \(0\.5/s, ~0s left\)", lines[1]), lines


# --------------------------------------------------------------------------- second round (the full generate run)


def test_progress_at_exactly_the_interval_its_rate_below_a_second_and_nothing_done_yet(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(G.time, "monotonic", lambda: clock[0])
    lines: list[str] = []
    p = Progress("jglue", 10)
    p.say = lines.append
    clock[0] = 100.5
    p.update(0)
    assert lines == []  # half a second in, nothing done
    clock[0] = 110.0  # exactly the default interval since the start: a line
    p.update(0)
    assert lines == ["jglue: 0/10 (0.0/s, ~0s left)"]  # no rate yet: no time left guessed, no division by 0
    clock[0] = 110.25
    p.every = 0.25
    p.update(5)
    assert lines[-1] == "jglue: 5/10 (0.5/s, ~10s left)"
    q = Progress("x", 4)
    q.say = lines.append
    clock[0] += 0.5  # half a second: the rate is per second of the elapsed time, not of at least one second
    q.update(4)
    assert lines[-1] == "x: 4/4 (8.0/s, ~0s left)"


def test_a_config_head_dim_a_tiny_free_memory_and_odd_budgets(monkeypatch):
    import torch

    devices = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: devices.append(device) or (10**9, 2 * 10**9))
    # head_dim set apart from hidden / heads (as Gemma and Qwen3 do): K and V use the config's head_dim
    cfg = {"num_hidden_layers": 1, "num_attention_heads": 16, "num_key_value_heads": 4, "hidden_size": 1024}
    planner = BatchPlanner(_gpu_model(**cfg, intermediate_size=0, head_dim=256))
    assert planner.token_budget == int(0.7 * 10**9 / (2 * 1 * 4 * 256 * 2 + 4 * 1024 * 2))
    assert devices == [planner.device]  # the free memory of the model's own GPU
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1, 2 * 10**9))
    assert BatchPlanner(_gpu_model(**cfg)).token_budget == 1  # less than one token fits: still one
    planner.token_budget = 101
    assert planner.rows(1) == 101 and planner.rows(2) == 50 and planner.rows(0) == 101
    assert planner.shrink(4) == 2 and planner.token_budget == 50 and isinstance(planner.token_budget, int)


def test_rows_that_differ_only_at_the_first_token_share_no_prefix():
    n = G.MIN_SHARED_PREFIX
    assert G.shared_prefix_length([[1] + [7] * (n + 8), [2] + [7] * (n + 8)]) == 0
    assert G.shared_prefix_length([[3] * (n + 8) + [1], [3] * (n + 8) + [2], [3] * (n + 8) + [4]]) == n + 8


def _spy(model, calls: list[dict]):
    """model.generate recording what it was handed (and the cache's length at the call)."""
    original = model.generate

    def spy(*args, **kwargs):
        cache = kwargs.get("past_key_values")
        calls.append({**kwargs, "cache_length": None if cache is None else cache.get_seq_length()})
        return original(*args, **kwargs)

    model.generate = spy


def test_what_model_generate_is_handed_left_padding_a_shared_prefix_and_greedy_settings(tiny):
    import torch

    model, tok = tiny
    head = "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。\n" * 6
    requests = [Request(head + tail, 4) for tail in ("りんご", "東京都の人口は何人ですか", "猫")]
    ids = [tok(r.prompt, add_special_tokens=False).input_ids for r in requests]
    shared = G.shared_prefix_length(ids)
    assert shared >= G.MIN_SHARED_PREFIX
    expected = [reference(model, tok, r.prompt, 4, add_special_tokens=False) for r in requests]
    calls: list[dict] = []
    _spy(model, calls)
    try:
        assert generate(model, tok, requests, add_special_tokens=False) == expected  # prefix shared by default
        assert generate(model, tok, requests, add_special_tokens=False, share_prefix=False) == expected
    finally:
        del model.generate
    shared_call, plain_call = calls
    # sorted longest first; each row: [shared prefix][left padding][its own tokens]
    order = sorted(range(3), key=lambda i: -len(ids[i]))
    width = max(len(i) for i in ids) - shared
    assert shared_call["input_ids"].shape == (3, shared + width)
    want_mask = torch.tensor(
        [[1] * shared + [0] * (width - len(ids[i]) + shared) + [1] * (len(ids[i]) - shared) for i in order]
    )
    assert torch.equal(shared_call["attention_mask"], want_mask)
    assert shared_call["cache_length"] == shared  # the prefix was computed once, into the cache handed over
    assert plain_call["cache_length"] is None and "past_key_values" not in plain_call
    width = max(len(i) for i in ids)
    want_mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in order])
    assert plain_call["input_ids"].shape == (3, width) and torch.equal(plain_call["attention_mask"], want_mask)
    for call in calls:
        assert (call["pad_token_id"], call["eos_token_id"]) == (tok.pad_token_id, tok.eos_token_id)
        # a model's own sampling defaults (generation_config.json) are switched off, not left to warn
        assert {k: call[k] for k in ("do_sample", "num_beams", "temperature", "top_p", "top_k")} == {
            "do_sample": False,
            "num_beams": 1,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }


def test_a_fixed_batch_size_and_a_token_budget_set_the_batches_longest_prompts_first(tiny, monkeypatch, capsys):
    model, tok = tiny
    requests = [Request(p, 6) for p in PROMPTS]  # one bucket (8)
    lengths = [len(tok(r.prompt).input_ids) for r in requests]
    expected = [reference(model, tok, r.prompt, 6) for r in requests]
    seen: list[list[int]] = []
    real = G.generate_batch
    monkeypatch.setattr(
        G,
        "generate_batch",
        lambda m, t, rows, *a, **k: seen.append([len(r) for r in rows]) or real(m, t, rows, *a, **k),
    )
    assert generate(model, tok, requests, batch_size=2, label="llm_jp_eval") == expected
    longest_first = sorted(lengths, reverse=True)
    assert seen == [longest_first[:2], longest_first[2:4], longest_first[4:]]
    out = capsys.readouterr().out
    assert "[jsweep] llm_jp_eval: 5/5 (" in out
    # a token budget (what a GPU's free memory gives): rows = budget // (longest prompt of the batch + bucket)
    budget = 2 * (longest_first[0] + 8) + 1

    class Budgeted(BatchPlanner):
        def __init__(self, model, batch_size="auto"):
            super().__init__(model, batch_size)
            self.token_budget = budget

    monkeypatch.setattr(G, "BatchPlanner", Budgeted)
    seen.clear()
    assert generate(model, tok, requests) == expected
    sizes, start = [], 0
    while start < len(longest_first):
        sizes.append(max(1, min(G.CPU_MAX_ROWS, budget // (longest_first[start] + 8))))
        start += sizes[-1]
    assert [len(b) for b in seen] == sizes and sizes[0] == 2
    assert [n for b in seen for n in b] == longest_first
    assert "[jsweep] generate: 5/5 (" in capsys.readouterr().out  # the default label
