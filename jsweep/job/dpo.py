"""Direct Preference Optimization of one cell with TRL's DPOTrainer (full, or LoRA through PEFT).

The cell's records are PreferenceExamples. Each becomes ``{prompt, chosen, rejected}`` text: the
prompt rendered in the cell's prompt format (the same one SFT trains and evaluation prompts
with), the replies as completions closed by EOS. ``method.beta`` and ``method.loss_type`` go to
``DPOConfig``; the reference model is a frozen copy of the starting model for full DPO, and the
starting model with its adapter disabled for LoRA (no second copy in memory). To start from an
SFT checkpoint the cell loads ``method.init_from`` (see jsweep.models.load.load_model).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from jsweep import registries
from jsweep.data.records import PreferenceExample, Record
from jsweep.job.callbacks import callbacks_for
from jsweep.job.context import CellContext, TrainResult, say
from jsweep.job.sft import (
    apply_token_budget,
    log_final_eval_loss,
    lora_config,
    run_training,
    save_result,
    sequence_lengths,
    trainer_args,
)


def render_preference(examples: Sequence[Record], spec: Any, tokenizer: Any) -> list[dict[str, str]]:
    """PreferenceExamples -> {prompt, chosen, rejected} text in the cell's prompt format; EOS closes each reply."""
    fmt = registries.PROMPT_FORMATS.get(spec.prompt.format)
    eos = tokenizer.eos_token or ""
    rows = []
    for ex in examples:
        if not isinstance(ex, PreferenceExample):
            raise TypeError(f"DPO needs preference pairs; record {getattr(ex, 'id', '?')!r} is a {type(ex).__name__}")
        prompt = fmt.prompt(ex.prompt, "", tokenizer=tokenizer, system=spec.prompt.system)
        rows.append({"prompt": prompt, "chosen": ex.chosen + eos, "rejected": ex.rejected + eos})
    return rows


def reference_model(ctx: CellContext, model: Any) -> Any:
    """A frozen copy of the starting policy, for full DPO.

    Under ZeRO-3 each rank holds only shards of the policy, and a deep copy would copy empty
    placeholders. So the reference is built again the way setup built the policy (partitioned
    by zero.Init), then each parameter is gathered and copied from the policy, which makes it the
    exact starting weights, random ones included. TRL wraps it for ZeRO-3 inference."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        import deepspeed

        from jsweep.models.load import load_model

        spec = ctx.spec
        ref = load_model(spec.model, device=ctx.device, seed=spec.seed, path=spec.method.init_from)
        for p, r in zip(model.parameters(), ref.parameters(), strict=True):
            with deepspeed.zero.GatheredParameters([p, r], modifier_rank=0):
                if ctx.rank == 0:
                    r.data.copy_(p.data)
    else:
        ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def train_dpo(ctx: CellContext, model: Any, tokenizer: Any) -> TrainResult:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    spec, method = ctx.spec, ctx.spec.method
    max_length = spec.train.max_length

    # 1. Data: render pairs in the cell's prompt format; count pairs whose longer side max_length truncates.
    train_rows = render_preference(ctx.train, spec, tokenizer)
    eval_rows = render_preference(ctx.held_out, spec, tokenizer)
    chosen = sequence_lengths([r["prompt"] + r["chosen"] for r in train_rows], tokenizer)
    rejected = sequence_lengths([r["prompt"] + r["rejected"] for r in train_rows], tokenizer)
    truncated = sum(max(c, r) > max_length for c, r in zip(chosen, rejected))
    ctx.log_metrics(
        {"data/train_examples": len(train_rows), "data/eval_examples": len(eval_rows), "data/truncated": truncated}
    )
    if truncated:
        say(f"warning: {truncated}/{len(train_rows)} preference pairs exceed max_length={max_length} and are truncated")
    train_rows = apply_token_budget(
        ctx, train_rows, [min(c, max_length) + min(r, max_length) for c, r in zip(chosen, rejected)]
    )

    # 2. Trainer: beta and loss type from the method; reference = frozen copy (full) or adapter off (LoRA).
    args = trainer_args(
        ctx, DPOConfig, max_length=max_length, beta=method.beta, loss_type=[method.loss_type], dataset_num_proc=None
    )
    lora = method.peft == "lora"
    # An explicit reference: TRL would otherwise reload it from model.config's path, which is the base
    # model, not the SFT checkpoint, when init_from was a merged adapter (and nothing, for random weights).
    ref_model = None if lora else reference_model(ctx, model)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(spec) if lora else None,
        callbacks=callbacks_for(ctx),
    )

    # 3. Train, then log the final loss, reward margin/accuracy and throughput.
    final = run_training(ctx, trainer)
    last = {}
    for entry in trainer.state.log_history:
        last.update({k: v for k, v in entry.items() if k.startswith("rewards/")})
    if "rewards/accuracies" in last:
        final["train/final_rewards_accuracy"] = last["rewards/accuracies"]
    if "rewards/margins" in last:
        final["train/final_rewards_margin"] = last["rewards/margins"]
    ctx.log_metrics(final)
    log_final_eval_loss(ctx, trainer)

    # 4. Save the final model (or adapter) and tokenizer.
    return save_result(ctx, trainer, tokenizer)
