"""Padding-free packing (the SFT default) trains each example exactly as if it were alone: the same loss
and the same gradient, packed or unpacked; packed examples never attend to each other and their
positions restart. Checked on jsweep's own SFT trainer (TRL's packed, padding-free batches) with the
tiny model, for the varlen attention path (which on CPU runs example by example) and for sdpa."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from jsweep.compose import compose_spec
from jsweep.data.load import load_examples
from jsweep.job.attention import NAME, jsweep_varlen_attention, packed_attention, resolve
from jsweep.job.context import CellContext
from jsweep.job.sft import build_sft_trainer, render_pairs
from jsweep.models.load import load_model, load_tokenizer
from jsweep.tracking import NullTracker
from tests.support.attention import dense_reference
from tests.support.sweeps import run_jsweep


class Params(NullTracker):
    def __init__(self):
        self.params = {}

    def log_params(self, params, *args, **kwargs):
        self.params.update(params)


def build(tmp_path, overrides, n=8):
    spec = compose_spec(["method=sft_full", "train.eval_fraction=0", "train.max_length=256", *overrides])
    ctx = CellContext(spec, tmp_path, Params(), "cpu")
    ctx.train = load_examples(spec.dataset, builtin_model=True).examples[:n]
    tokenizer = load_tokenizer(spec.model, spec.seed)
    model = load_model(spec.model, device="cpu", seed=spec.seed)
    rows = render_pairs(ctx.train, spec, tokenizer)
    return ctx, build_sft_trainer(ctx, model, tokenizer, rows, []), model


def token_nll(logits, labels):
    """Summed NLL and count of the next-token targets of one example (labels != -100)."""
    logp = torch.log_softmax(logits[:-1].double(), -1)
    target = labels[1:]
    keep = target != -100
    return -logp[keep].gather(-1, target[keep][:, None]).sum(), int(keep.sum())


def per_example_losses(model, batches):
    """{input_ids: mean NLL} of each example, from packed (padding-free) or one-example batches."""
    out = {}
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits[0]
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        cu = batch["cu_seq_lens_q"].tolist() if "cu_seq_lens_q" in batch else [0, ids.numel()]
        for s, e in itertools.pairwise(cu):
            nll, n = token_nll(logits[s:e], labels[s:e])
            out[tuple(ids[s:e].tolist())] = nll / max(n, 1)
    return out


def losses_and_grads(model, batches):
    model.zero_grad()
    losses = per_example_losses(model, batches)
    sum(losses.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v) for k, v in losses.items()}, grads


@pytest.mark.parametrize("attention", ["varlen", "sdpa"])
@pytest.mark.parametrize("train_on_inputs", [False, True], ids=["completion_only", "train_on_inputs"])
def test_each_example_has_the_same_loss_and_gradient_packed_and_unpacked(tmp_path, attention, train_on_inputs):
    prompt = [f"prompt.train_on_inputs={str(train_on_inputs).lower()}"]
    ctx, packed_trainer, model = build(tmp_path / "p", [f"train.attention={attention}", *prompt])
    _, plain_trainer, _ = build(tmp_path / "u", ["train.packing=false", *prompt])
    impl = model.config._attn_implementation
    assert impl == (NAME if attention == "varlen" else "sdpa")
    assert ctx.tracker.params["train.attention_impl"] == impl

    rows = [packed_trainer.train_dataset[i] for i in range(len(packed_trainer.train_dataset))]
    assert any(len(r["seq_lengths"]) > 1 for r in rows), "the fixture must pack several examples into a row"
    packed = [packed_trainer.data_collator([r]) for r in rows]
    for batch in packed:  # one flat row, no mask, positions restart per example
        assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
        cu = batch["cu_seq_lens_q"].tolist()
        expect = torch.cat([torch.arange(e - s) for s, e in itertools.pairwise(cu)])
        assert torch.equal(batch["position_ids"][0], expect)
    single = [
        plain_trainer.data_collator([plain_trainer.train_dataset[i]]) for i in range(len(plain_trainer.train_dataset))
    ]

    packed_losses, packed_grads = losses_and_grads(model, packed)
    model.set_attn_implementation("sdpa")
    plain_losses, plain_grads = losses_and_grads(model, single)
    assert set(packed_losses) == set(plain_losses) and len(plain_losses) == len(ctx.train)
    for key, loss in plain_losses.items():
        assert math.isfinite(loss) and packed_losses[key] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert packed_grads.keys() == plain_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    if not train_on_inputs:  # completion-only: prompt tokens carry no loss, so fewer targets
        assert sum(int((b["labels"] != -100).sum()) for b in single) < sum(int(b["input_ids"].numel()) for b in single)


def test_packed_examples_never_attend_to_each_other(tmp_path):
    _, trainer, model = build(tmp_path, ["train.attention=varlen"])
    row = max(
        (trainer.train_dataset[i] for i in range(len(trainer.train_dataset))), key=lambda r: len(r["seq_lengths"])
    )
    batch = trainer.data_collator([row])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    cu = batch["cu_seq_lens_q"].tolist()
    with torch.no_grad():
        before = model(**inputs).logits[0]
        changed = dict(inputs, input_ids=inputs["input_ids"].clone())
        changed["input_ids"][0, cu[0] : cu[1]] = torch.randint(5, 100, (cu[1] - cu[0],))  # rewrite example 1
        after = model(**changed).logits[0]
    assert not torch.allclose(before[cu[0] : cu[1]], after[cu[0] : cu[1]])
    torch.testing.assert_close(before[cu[1] :], after[cu[1] :], rtol=0, atol=1e-6)  # the others: untouched


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_packed_attention_matches_a_block_diagonal_reference(kv_heads):
    g = torch.Generator().manual_seed(1)
    cu = [0, 1, 7, 20, 21, 40]
    q = torch.randn(40, 4, 16, generator=g)
    k, v = torch.randn(40, kv_heads, 16, generator=g), torch.randn(40, kv_heads, 16, generator=g)
    out = packed_attention(q, k, v, torch.tensor(cu, dtype=torch.int32), 19, scaling=0.25)
    ref = dense_reference(q, k, v, cu, 0.25)
    assert (out.double() - ref).norm() / ref.norm() < 1e-6

    class Module(torch.nn.Module):
        pass

    # Through the transformers attention signature: (B, H, T, D) in, (B, T, H, D) out.
    module = Module()
    got, _ = jsweep_varlen_attention(
        module,
        q.transpose(0, 1)[None],
        k.transpose(0, 1)[None],
        v.transpose(0, 1)[None],
        None,
        scaling=0.25,
        cu_seq_lens_q=torch.tensor(cu, dtype=torch.int32),
        max_length_q=19,
    )
    assert got.shape == (1, 40, 4, 16)
    assert (got[0].double() - ref).norm() / ref.norm() < 1e-6


def test_attention_choice():
    assert resolve("auto", "cpu", packing=True)[0] == "sdpa" and "sdpa" in resolve("auto", "cpu", packing=True)[1]
    assert resolve("auto", "cpu", packing=False) == ("sdpa", "")
    assert resolve("varlen", "cpu", packing=True)[0] == NAME
    assert resolve("eager", "cpu", packing=True) == ("eager", "")
    from jsweep.validate import validate_cell

    assert any("train.attention" in p for p in validate_cell(compose_spec(["train.attention=flash"])))


def test_a_packed_cell_logs_its_attention_and_padding(tmp_path, mlflow_client_for):
    proc = run_jsweep(
        ["eval=[]", "train.max_steps=2", "train.save_model=false", "train.dropout=0", "output_root=out"], tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = next((tmp_path / "out" / "cells").glob("*/cell.log")).read_text()
    assert log.count("attention: the varlen kernel") == 1, log
    assert log.count("dropout: 0 in the model's config and its ") == 1, log  # train.dropout reached the model
    client = mlflow_client_for(tmp_path)
    runs = client.search_runs(
        [client.get_experiment_by_name("jsweep").experiment_id], filter_string="tags.jsweep.cell_id != ''"
    )
    run = runs[0]
    assert run.data.params["train.attention_impl"] == "sdpa"
    assert run.data.params["train.packing"] == "True" and run.data.params["train.attention"] == "auto"
    assert float(run.data.params["train.dropout"]) == 0.0
    assert run.data.metrics["train/padding_fraction"] == 0.0


def test_unpacked_cells_count_their_padding(tmp_path):
    _ctx, trainer, model = build(tmp_path, ["train.packing=false", "train.micro_batch_size=4"])
    model.eval()  # held-out batches are not counted
    trainer.data_collator([trainer.train_dataset[j] for j in range(4)])
    assert trainer.data_collator.fraction() is None
    model.train()
    for i in range(0, 8, 4):
        trainer.data_collator([trainer.train_dataset[j] for j in range(i, i + 4)])
    assert 0 < trainer.data_collator.fraction() < 1
