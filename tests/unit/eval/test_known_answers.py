"""Known-answer evaluation: a model that must return chosen answers, scored end to end.

The model is the builtin tiny Llama whose logits are overridden by a script: after a registered
prompt (the end of an llm-jp-eval prompt, or a JGLUE document's text) it puts all its mass on the
tokens of the answer chosen for that prompt, then on EOS. It runs through the real paths: jsweep's
generation engine for llm-jp-eval, lm-evaluation-harness (log-likelihoods and generation) for
JGLUE, and a real CellTracker on a temporary SQLite MLflow store. Every sample is answered right or
wrong on purpose, and each wrong answer scores 0 on every metric, so each task's score is the share
answered right, counted here by hand, and each category and AVG follows from those counts.
"""

from __future__ import annotations

import json
import statistics
import types

import pytest

from tests.support.store import seed_store

WRONG = "？"  # scores 0 everywhere: not equal, no word characters (char_f1 0), no shared line, parses to -2


class Script:
    """Prompt-end token ids -> answer token ids (then EOS)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.keys: dict[tuple[int, ...], list[int]] = {}

    def add(self, prompt_end: str, answer: str) -> None:
        key = tuple(self.tok(prompt_end, add_special_tokens=False).input_ids)
        self.keys[key] = [*self.tok(answer, add_special_tokens=False).input_ids, self.tok.eos_token_id]

    def next_tokens(self, seq: list[int]) -> dict[int, int]:
        """{position: scripted next token} for one row's real tokens."""
        best_end, answer = -1, None
        for key, ans in self.keys.items():
            n = len(key)
            for end in range(len(seq) - 1, n - 2, -1):  # the last occurrence of the key
                if tuple(seq[end - n + 1 : end + 1]) == key:
                    if end > best_end:
                        best_end, answer = end, ans
                    break
        out: dict[int, int] = {}
        if answer is None:
            return out
        for k, t in enumerate(range(best_end, len(seq))):
            if k >= len(answer) or (k > 0 and seq[t] != answer[k - 1]):
                break
            out[t] = answer[k]
        return out


def scripted(model, script: Script):
    """Wrap ``model.forward`` so that its logits follow ``script``.

    With a KV cache, generation feeds only the new tokens after the first step (and the engine may
    compute a prefix the rows share once, for one row); the wrapper keeps the rows seen so far so
    that it always reads whole rows. The model's own computation still runs
    (shapes, cache and devices as usual); only its logits are replaced.
    """
    import torch

    original = model.forward
    state = {"rows": None}

    def forward(input_ids=None, attention_mask=None, **kwargs):
        past = kwargs.get("past_key_values")
        prior = past.get_seq_length() if past is not None and hasattr(past, "get_seq_length") else 0
        seen = state["rows"]
        if prior and seen is not None and seen.shape[0] != input_ids.shape[0]:
            seen = seen.repeat_interleave(input_ids.shape[0] // seen.shape[0], dim=0)  # a shared prefix's cache
        rows = input_ids if prior == 0 or seen is None else torch.cat([seen, input_ids], dim=1)
        state["rows"] = rows
        out = original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        width = out.logits.shape[1]  # logits of the last `width` positions of each row
        logits = torch.full_like(out.logits, -30.0)
        for b in range(rows.shape[0]):
            mask = attention_mask[b, -rows.shape[1] :] if attention_mask is not None else None
            positions = [i for i in range(rows.shape[1]) if mask is None or mask[i] == 1]
            seq = rows[b, positions].tolist()
            for t, token in script.next_tokens(seq).items():
                col = positions[t] - (rows.shape[1] - width)
                if 0 <= col < width:
                    logits[b, col, token] = 30.0
        out.logits = logits
        return out

    model.forward = forward
    return model


@pytest.fixture
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    model.config._name_or_path = "not-on-any-hub/never-loaded"
    return model, AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture
def ctx(tmp_path):
    from mlflow.tracking import MlflowClient

    from jsweep.job.context import CellContext
    from jsweep.tracking import CellTracker

    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("known-answers"))
    cell_dir = tmp_path / "cell"
    cell_dir.mkdir()
    spec = types.SimpleNamespace(tracking=types.SimpleNamespace(log_predictions=True))
    c = CellContext(spec=spec, cell_dir=cell_dir, tracker=CellTracker(uri, run.info.run_id, cell_dir), device="cpu")
    c.client, c.run_id = client, run.info.run_id
    return c


def right(i: int) -> bool:
    return i % 3 != 2  # two of every three answered right


# --------------------------------------------------------------------------- llm-jp-eval


def test_llm_jp_eval_known_answers(tiny, ctx):
    from jsweep.eval.llm_jp_eval import metrics as M
    from jsweep.eval.llm_jp_eval.evaluator import build_prompt, load_tasks
    from jsweep.eval.run import evaluate_all

    model, tok = tiny
    options = {"max_num_samples": 6, "num_few_shots": 2, "batch_size": 4}
    tasks = load_tasks(options)
    script, plan = Script(tok), {}
    for task in tasks:
        for i, s in enumerate(task.samples):
            gold = M.normalize(s.output)
            fits = len(tok(s.output, add_special_tokens=False).input_ids) <= task.output_length
            answer = s.output if right(i) and fits else WRONG
            script.add(build_prompt(task, s.input), answer)
            plan[(task.name, i)] = (answer, answer == s.output, gold)
    ctx.spec.eval = {"llm_jp_eval": options}
    evaluate_all(ctx, scripted(model, script), tok)  # what a cell runs
    metrics = ctx.metrics

    # each task: the share answered right (wrong answers score 0 on every metric)
    expected: dict[str, float] = {}
    for task in tasks:
        n = len(task.samples)
        hits = sum(plan[(task.name, i)][1] for i in range(n))
        for metric in task.metrics:
            key = f"llm_jp_eval/{task.name}/{metric}"
            if metric in ("exact_match", "char_f1", "set_f1"):
                expected[key] = hits / n
            elif metric == "bleu_ja":
                expected[key] = 100.0 * hits / n
            elif metric in ("pearson", "spearman"):
                golds = [float(s.output) for s in task.samples]
                preds = [float(s.output) if plan[(task.name, i)][1] else -2.0 for i, s in enumerate(task.samples)]
                if metric == "spearman":
                    golds, preds = M.ranks(golds), M.ranks(preds)  # ranks has its own known answers
                expected[key] = statistics.correlation(golds, preds)
    assert {k: metrics[k] for k in expected} == pytest.approx(expected)
    assert not any(k.endswith("comet_wmt22") for k in metrics)  # skipped, never 0

    # categories (complete ones under their name, the others _partial) and AVG_partial, by hand
    main = {t: m for members in M.CATEGORIES.values() for t, m in members.items()}
    by_cat: dict[str, list[float]] = {}
    for task in tasks:
        cat = M.category_of(task.name)
        if cat in M.CATEGORIES and f"llm_jp_eval/{task.name}/{main[task.name]}" in expected:
            by_cat.setdefault(cat, []).append(expected[f"llm_jp_eval/{task.name}/{main[task.name]}"])
    cat_scores = {c: sum(v) / len(v) for c, v in by_cat.items()}
    for c, v in cat_scores.items():
        name = c if len(by_cat[c]) == len(M.CATEGORIES[c]) else f"{c}_partial"
        assert metrics[f"llm_jp_eval/{name}"] == pytest.approx(v), c
    assert "llm_jp_eval/AVG" not in metrics
    assert metrics["llm_jp_eval/AVG_partial"] == pytest.approx(sum(cat_scores.values()) / len(cat_scores))
    assert metrics["llm_jp_eval/STS"] == pytest.approx(expected["llm_jp_eval/jsts/pearson"])

    # the predictions file, column by column, in request order
    rows = [json.loads(line) for line in (ctx.cell_dir / "predictions" / "llm_jp_eval.jsonl").read_text().splitlines()]
    want = [(t.name, i, s) for t in tasks for i, s in enumerate(t.samples)]
    assert len(rows) == len(want)
    for row, (name, i, s) in zip(rows, want):
        answer, ok, gold = plan[(name, i)]
        task = next(t for t in tasks if t.name == name)
        assert list(row) == ["task", "input", "prompt", "raw", "pred", "gold", "score"]
        assert (row["task"], row["input"], row["prompt"]) == (name, s.input, build_prompt(task, s.input))
        assert (row["raw"], row["pred"], row["gold"]) == (answer, M.normalize(answer).strip(), gold)
        if task.metrics[0] in ("exact_match", "char_f1", "set_f1"):
            assert row["score"] == (1.0 if ok else 0.0), (name, i)

    # the same numbers reached MLflow, and the per-task tables hold every row
    logged = ctx.client.get_run(ctx.run_id).data.metrics
    assert {k: logged[k] for k in metrics} == pytest.approx(metrics)
    jnli_table = json.loads((ctx.cell_dir / "artifacts" / "llm_jp_eval/predictions/jnli.json.columns.json").read_text())
    assert list(jnli_table) == ["input", "pred", "gold", "score", "raw"]
    assert jnli_table["pred"] == [r["pred"] for r in rows if r["task"] == "jnli"]


def test_batched_and_one_by_one_generation_return_the_script_in_request_order(tiny):
    from jsweep.eval.generate import Request, generate

    model, tok = tiny
    script = Script(tok)
    prompts = [f"### 入力:\n質問{i}は何ですか" + "。" * (i % 5) + "\n\n### 応答:\n" for i in range(11)]
    answers = [f"答え{i}" for i in range(11)]
    for p, a in zip(prompts, answers):
        script.add(p, a)
    model = scripted(model, script)
    requests = [Request(p, 8 if i % 2 else 12) for i, p in enumerate(prompts)]  # two max_new_tokens groups
    side = tok.padding_side
    batched = generate(model, tok, requests, batch_size=4, add_special_tokens=False)
    single = generate(model, tok, requests, batch_size=1, add_special_tokens=False)
    assert batched == single == answers
    assert tok.padding_side == side  # the engine pads left, then restores
    with_bos = generate(model, tok, requests[:3], batch_size=2, add_special_tokens=True)
    assert with_bos == answers[:3]


# --------------------------------------------------------------------------- JGLUE


def test_jglue_known_answers(tiny, ctx):
    from jsweep.eval.jglue import evaluator as jglue
    from jsweep.eval.run import evaluate_all

    model, tok = tiny
    evaluator = jglue.JGlueEval({"batch_size": 4})
    tasks, names, _, _ = evaluator.build_tasks(tok)
    script, expected_hits = Script(tok), {}
    for name, task in tasks.items():
        t = names[name]
        docs = list(task.eval_docs)
        hits = 0
        for i, doc in enumerate(docs):
            text = task.doc_to_text(doc)
            if t == "jsquad":
                gold = doc["answers"]["text"][0]
                answer = gold if right(i) else WRONG
            else:
                choices = task.doc_to_choice(doc)
                target = task.doc_to_target(doc)
                gold_i = target if isinstance(target, int) else choices.index(target)
                answer = choices[gold_i] if right(i) else choices[(gold_i + 1) % len(choices)]
            script.add(text, answer)
            hits += right(i)
        expected_hits[t] = hits / len(docs)
    ctx.spec.eval = {"jglue": {"batch_size": 4}}
    evaluate_all(ctx, scripted(model, script), tok)
    metrics = ctx.metrics

    main = {t: f"jglue/{t}/{m}" for t, m in jglue.MAIN_METRIC.items() if t in expected_hits}
    assert {t: metrics[k] for t, k in main.items()} == pytest.approx(expected_hits)
    assert metrics["jglue/jsquad/f1"] == pytest.approx(expected_hits["jsquad"])  # right: 1, wrong: 0
    assert metrics["jglue/jsquad/char_f1"] == pytest.approx(expected_hits["jsquad"])
    assert metrics["jglue/AVG"] == pytest.approx(sum(expected_hits.values()) / len(expected_hits))
    rows = [json.loads(line) for line in (ctx.cell_dir / "predictions" / "jglue.jsonl").read_text().splitlines()]
    for row in rows:
        if row["task"] == "jsquad":
            assert row["prediction"] in (row["answers"][0], WRONG)
            assert row["exact_match"] == float(row["prediction"] == row["answers"][0])
        else:
            assert row["acc"] == float(row["prediction"] == row["gold"])
    logged = ctx.client.get_run(ctx.run_id).data.metrics
    assert {k: logged[k] for k in metrics} == pytest.approx(metrics)
