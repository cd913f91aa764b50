"""The generation engine: same completions as one-by-one greedy decoding, in request order."""

from __future__ import annotations

import pytest

from jsweep.eval.generate import BatchPlanner, Request, decode_groups, generate, shared_prefix_length


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(str(tiny_model_dir))


def fixture_requests(per_task: int | None = None):
    from jsweep.eval.llm_jp_eval.evaluator import build_prompt, load_tasks

    tasks = load_tasks({"num_few_shots": 4, "max_num_samples": -1})
    # every task's real prompts (the first ``per_task`` of each, or all); outputs capped at 12 tokens (a random
    # tiny model never stops early, and 191-token chabsa answers one by one would cost minutes on a CPU
    # without testing more)
    return tasks, [
        Request(build_prompt(t, s.input), min(t.output_length, 12)) for t in tasks for s in t.samples[:per_task]
    ]


def test_engine_equals_one_by_one_greedy_on_every_fixture_task(tiny):
    """The first three prompts of every fixture task (30 of the 80): every task's prompt length and
    few-shot prefix, batches of five that cross task boundaries, a shared prefix in each task's rows."""
    model, tok = tiny
    tasks, requests = fixture_requests(per_task=3)
    one_by_one = generate(model, tok, requests, batch_size=1, add_special_tokens=False, share_prefix=False)
    engine = generate(model, tok, requests, add_special_tokens=False)  # auto batches, shared prefix
    plain_batches = generate(model, tok, requests, batch_size=5, add_special_tokens=False, share_prefix=False)
    assert engine == one_by_one
    assert plain_batches == one_by_one
    # the prefix path really ran: each task's prompts share the instruction and few-shots
    ids = [tok(r.prompt, add_special_tokens=False).input_ids for r in requests[:3]]
    assert shared_prefix_length(ids) > 100
    assert {len(t.samples) for t in tasks} and len(engine) == sum(min(3, len(t.samples)) for t in tasks)


def test_mixed_budgets_share_batches_and_each_row_keeps_its_own(tiny):
    """Per-request budgets (JSQuAD's longest-gold-answer caps) are batched by power-of-two bucket: rows decode
    to the batch's largest budget and keep their own first tokens, the same text as decoding alone."""
    from jsweep.eval import generate as G

    model, tok = tiny
    _, requests = fixture_requests()
    mixed = [Request(r.prompt, 1 + i % 7) for i, r in enumerate(requests[:14])]  # budgets 1..7: buckets 1, 2, 4, 8
    alone = [generate(model, tok, [r], batch_size=1, add_special_tokens=False, share_prefix=False)[0] for r in mixed]
    calls = []
    real = G.generate_batch
    G.generate_batch = lambda *a, **k: calls.append((len(a[2]), a[3])) or real(*a, **k)
    try:
        batched = generate(model, tok, mixed, add_special_tokens=False)
    finally:
        G.generate_batch = real
    assert batched == alone
    assert len(calls) == 4 and sorted(n for n, _ in calls) == [2, 2, 4, 6]  # one batch per bucket, not per budget
    assert sorted(m for _, m in calls) == [1, 2, 4, 7]
    # where a step costs the same up to 1000 rows (a GPU's small batches), the buckets decode as one batch
    calls.clear()
    G.generate_batch = lambda *a, **k: calls.append((len(a[2]), a[3])) or real(*a, **k)
    try:
        merged = generate(model, tok, mixed, add_special_tokens=False, overhead_rows=1000)
    finally:
        G.generate_batch = real
    assert merged == alone
    assert calls == [(14, 7)]


def test_decode_groups_merge_only_the_small_long_budget_tail():
    # JSQuAD's budgets with llm-jp-3's tokenizer, per bucket: (rows, longest budget)
    shape = {
        1: (487, 1),
        2: (876, 2),
        4: (1741, 4),
        8: (1033, 8),
        16: (256, 16),
        32: (40, 31),
        64: (8, 54),
        128: (1, 96),
    }
    budgets = [longest for rows, longest in shape.values() for _ in range(rows)]
    # 1 row x 96 steps + 8 x 54 + 40 x 31 cost 181 steps alone and 96 together (49 rows < 64);
    # adding the 256 rows of bucket 16 would cost 96 x 305/64 = 457 steps against 96 + 16 x 4 = 160
    assert decode_groups(budgets, 64) == {128: 128, 64: 128, 32: 128, 16: 16, 8: 8, 4: 4, 2: 2, 1: 1}
    assert decode_groups(budgets, 1) == {b: b for b in shape}  # compute-bound: never worth it
    assert decode_groups(budgets, 10_000) == dict.fromkeys(shape, 128)
    assert decode_groups([], 64) == {}


def test_decode_groups_cost_model_at_its_edges():
    """A step costs steps x max(1, rows / overhead_rows); a bucket joins only when that is strictly cheaper."""
    # 1 row x 8 steps and n rows x 2 steps, 4 rows per step for free: n=3 together cost 8 against 8 + 2;
    # n=4 cost 8 x 5/4 = 10 against 8 + 2, a tie, so they stay apart
    assert decode_groups([8] + [2] * 3, 4) == {8: 8, 2: 8}
    assert decode_groups([8] + [2] * 4, 4) == {8: 8, 2: 2}
    # the rows a group has gathered count: 1 + 3 rows join (8 against 8 + 4), a fifth row would cost
    # 8 x 5/4 = 10 against 8 + 2
    assert decode_groups([8] + [4] * 3 + [2], 4) == {8: 8, 4: 8, 2: 2}
    # a group decodes as long as its largest budget, wherever that row stands: 2 rows x 8 steps, and 3 rows
    # x 2 steps cost 8 x 5/4 = 10 together against 8 + 2 apart (with 5 steps they would join: 6.25 against 7)
    assert decode_groups([8, 5] + [2] * 3, 4) == {8: 8, 2: 2}
    # one row per step for free: two single rows cost 8 x 2 together against 8 + 2 apart
    assert decode_groups([8, 2], 1) == {8: 8, 2: 2}
    assert decode_groups([8, 2], 2) == {8: 8, 2: 8}
    assert decode_groups([8, 2], 0) == {8: 8, 2: 2}  # no rows for free, as 1


def test_shared_prefix_length_leaves_every_row_a_token():
    assert shared_prefix_length([[1] * 40, [1] * 40]) == 39
    assert shared_prefix_length([[1] * 40 + [2], [1] * 40 + [3]]) == 40
    assert shared_prefix_length([[1] * 10 + [2], [1] * 10 + [3]]) == 0  # too short to be worth it
    assert shared_prefix_length([[1] * 40]) == 0


def test_out_of_memory_halves_the_batch_and_loses_nothing(tiny, capsys):
    import torch

    model, tok = tiny
    _, requests = fixture_requests()
    requests = requests[:9]
    expected = generate(model, tok, requests, batch_size=1, add_special_tokens=False, share_prefix=False)
    original = model.generate
    sizes = []

    def generate_or_oom(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        sizes.append(rows)
        if rows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(*args, **kwargs)

    model.generate = generate_or_oom
    try:
        got = generate(model, tok, requests, batch_size=8, add_special_tokens=False, label="llm_jp_eval")
    finally:
        del model.generate
    assert got == expected
    assert sizes[0] > 2 and max(sizes[sizes.index(2) :]) <= 2  # backed off, then stayed small
    assert "llm_jp_eval: out of memory with" in capsys.readouterr().out


def test_planner_sizes_by_tokens_on_a_gpu_and_by_rows_elsewhere(tiny):
    model, _ = tiny
    cpu = BatchPlanner(model, "auto")
    assert cpu.token_budget is None and cpu.rows(10_000) == 16
    assert BatchPlanner(model, 4).rows(10) == 4
    with pytest.raises(ValueError):
        BatchPlanner(model, 0)
    cpu.token_budget = 1000  # what a GPU's free memory gives, in tokens
    assert cpu.rows(100) == 10 and cpu.rows(5000) == 1
    assert cpu.shrink(10) == 5 and cpu.token_budget == 500


def test_batched_tokenization_gives_the_ids_of_one_call_per_prompt(tiny, monkeypatch):
    """Prompts are encoded in batched calls on all cores: the ids of one call per prompt, with and without
    special tokens; TOKENIZERS_PARALLELISM is as it was afterwards."""
    import os

    from jsweep.eval.generate import encode_batch

    _, tok = tiny
    _, requests = fixture_requests()
    prompts = [r.prompt for r in requests] + ["", " 先頭に空白", "東京\n\n大阪 "]
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    for special in (False, True):
        assert encode_batch(tok, prompts, add_special_tokens=special) == [
            tok(p, add_special_tokens=special).input_ids for p in prompts
        ]
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


def test_decoding_on_a_gpu_leaves_out_cudnn_attention_and_restores_the_flags():
    """cuDNN's attention plans every new shape on the CPU, and a growing KV cache is a new shape at every
    step (70-100 ms a step on an H200 against 22 ms): the engine decodes with the other kernels."""
    import types

    import torch

    from jsweep.eval import generate as G

    flags = torch.backends.cuda
    before = (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled())
    with G.attention_backends(types.SimpleNamespace(type="cuda")):
        assert (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled()) == (
            False,
            True,
            True,
        )
    assert (flags.cudnn_sdp_enabled(), flags.flash_sdp_enabled(), flags.mem_efficient_sdp_enabled()) == before
    with G.attention_backends(torch.device("cpu")):  # a CPU keeps PyTorch's own choice
        assert flags.cudnn_sdp_enabled() == before[0]
