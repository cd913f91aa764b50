"""Supervised fine-tuning of one cell with TRL's SFTTrainer (full, or LoRA through PEFT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jsweep import registries
from jsweep.data.records import Example, Record
from jsweep.job.callbacks import TokenLedger, callbacks_for
from jsweep.job.context import CellContext, TrainResult, say


def precision_flags(precision: str, device: str) -> dict[str, bool]:
    """bf16/fp16 flags for the trainer: ``auto`` is bf16 on GPUs that support it, fp32 on CPU."""
    import torch

    if device == "cpu":
        return {"bf16": False, "fp16": False}
    if precision == "auto":
        return {"bf16": torch.cuda.is_bf16_supported(), "fp16": False}
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def render_pairs(examples: Sequence[Record], spec: Any, tokenizer: Any) -> list[dict[str, str]]:
    """Examples -> {prompt, completion} text in the cell's prompt format; EOS closes each completion."""
    fmt = registries.PROMPT_FORMATS.get(spec.prompt.format)
    rows = []
    for ex in examples:
        if not isinstance(ex, Example):
            raise TypeError(f"SFT needs instruction examples; record {ex.id!r} is a {type(ex).__name__}")
        prompt, completion = fmt.render(ex, tokenizer=tokenizer, system=spec.prompt.system)
        rows.append({"prompt": prompt, "completion": completion + tokenizer.eos_token})
    return rows


def sequence_lengths(texts: list[str], tokenizer: Any) -> list[int]:
    """Token count of each training sequence as the model sees it (before truncation)."""
    return [len(tokenizer(t).input_ids) for t in texts]


def apply_token_budget(ctx: CellContext, rows: list[dict[str, str]], lengths: list[int]) -> list[dict[str, str]]:
    """``dataset.budget=tokens:N``: cut or repeat the training rows (seeded, whole passes first) until they
    hold N tokens (``lengths``: tokens per row after truncation). Logs data/budget/*; no-op without a token budget."""
    from jsweep.data.budget import budget_tokens, token_budget_indices

    budget = budget_tokens(ctx.spec.dataset.budget)
    if budget is None or not rows:
        return rows
    idx = token_budget_indices(lengths, budget, ctx.spec.dataset.seed)
    tokens = sum(lengths[i] for i in idx)
    ctx.log_metrics(
        {"data/budget/tokens": tokens, "data/budget/examples": len(idx), "data/budget/passes": len(idx) / len(rows)}
    )
    say(
        f"token budget {budget}: {len(idx)} training sequences ({tokens} tokens, "
        f"{len(idx) / len(rows):.2f} passes over {len(rows)} examples)"
    )
    return [rows[i] for i in idx]


def lora_config(spec: Any):
    from peft import LoraConfig

    lora = spec.method.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def trainer_args(ctx: CellContext, config_cls: type, **extra: Any):
    """Training arguments shared by SFT and DPO, from the cell's train section."""
    from jsweep.data.budget import budget_steps

    spec, t = ctx.spec, ctx.spec.train
    has_eval = bool(ctx.held_out)
    return config_cls(
        output_dir=str(ctx.cell_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=budget_steps(spec.dataset.budget) or t.max_steps,  # dataset.budget=steps:N fixes the steps
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=spec.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        eval_strategy=("steps" if t.eval_steps > 0 else "epoch") if has_eval else "no",
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        save_strategy=("steps" if t.checkpoint_steps > 0 else "epoch") if t.checkpoint_steps >= 0 else "no",
        save_steps=t.checkpoint_steps if t.checkpoint_steps > 0 else None,
        save_total_limit=t.keep_checkpoints,
        report_to="none",
        disable_tqdm=True,
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=ctx.device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        dataloader_num_workers=0,
        deepspeed=str(ctx.deepspeed_config) if ctx.deepspeed_config else None,
        ddp_backend="gloo" if ctx.device == "cpu" and ctx.world_size > 1 else None,
        ddp_find_unused_parameters=False if ctx.world_size > 1 else None,
        **precision_flags(t.precision, ctx.device),
        **extra,
    )


def log_final_eval_loss(ctx: CellContext, trainer: Any) -> None:
    """eval/loss after training: the trainer's last evaluation if it ran at the final step, else one now."""
    if not ctx.held_out:
        return
    last = [h for h in trainer.state.log_history if "eval_loss" in h]
    if last and last[-1].get("step") == trainer.state.global_step:
        loss = last[-1]["eval_loss"]
    else:
        loss = trainer.evaluate()["eval_loss"]
    ctx.log_metrics({"eval/loss": loss}, step=trainer.state.global_step)


def run_mean_loss(log_history: list[dict[str, Any]], first_step: int, last_step: int, attempt_loss: float) -> float:
    """The mean training loss per step over the whole run, resumed attempts included. The trainer's own
    ``training_loss`` averages only the steps of this attempt (``first_step``+1 .. ``last_step``); the
    steps before come from the logged losses the checkpoint restored (each the mean of its logging
    interval, weighted by the interval's length). Steps trained after the checkpoint's last logged loss
    are unknown and left out of the mean. Uninterrupted, this is ``training_loss`` itself."""
    if first_step <= 0 or last_step <= first_step:
        return attempt_loss
    total, covered, previous = 0.0, 0, 0
    for entry in log_history:
        step = entry.get("step")
        if "loss" not in entry or not isinstance(step, int) or step > first_step or step <= previous:
            continue
        total += float(entry["loss"]) * (step - previous)
        covered += step - previous
        previous = step
    this_attempt = last_step - first_step
    return (total + attempt_loss * this_attempt) / (covered + this_attempt)


def run_training(ctx: CellContext, trainer: Any) -> dict[str, float]:
    """Train (resuming from ctx.resume_from); the final loss, runtime, steps and throughput
    (non-padding tokens per second) shared by every trainer."""
    ctx.tokens_before = TokenLedger.read(ctx.resume_from)
    ledger = TokenLedger(trainer, ctx.tokens_before)
    trainer.add_callback(ledger)
    output = trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    runtime = float(output.metrics.get("train_runtime", 0.0)) or 1e-9
    tokens = ledger.total() - ctx.tokens_before  # trained in this attempt, in ``runtime``
    final = run_mean_loss(trainer.state.log_history, ledger.first_step, trainer.state.global_step, output.training_loss)
    return {
        "train/final_loss": final,
        "train/runtime_seconds": runtime,
        "train/tokens": ledger.total(),
        "train/tokens_per_second": tokens / runtime,
        "train/steps": trainer.state.global_step,
    }


def save_result(ctx: CellContext, trainer: Any, tokenizer: Any) -> TrainResult:
    """Save the final model (or LoRA adapter) and tokenizer when train.save_model; the trained result."""
    model_dir = None
    if ctx.spec.train.save_model:
        model_dir = ctx.model_dir
        trainer.save_model(str(model_dir))  # collective under ZeRO-3: gathers the whole model
        if ctx.rank == 0:
            tokenizer.save_pretrained(str(model_dir))
    return TrainResult(trainer.model, tokenizer, model_dir)


def step_options(ctx: CellContext, model: Any) -> dict[str, Any]:
    """The trainer's speed switches of ``train.*`` for this cell: the attention implementation set on
    the model (logged as the param ``train.attention_impl``), Liger kernels. Says once in the cell log
    when the fast path cannot run here and what runs instead."""
    from jsweep.job.attention import NAME, attention_dropout, kernel_available, resolve, set_attention

    t = ctx.spec.train
    impl, note = resolve(t.attention, ctx.device, t.packing)
    set_attention(model, impl)
    if note:
        say(note)
    drop = attention_dropout(model)
    if impl == NAME and drop > 0 and kernel_available(ctx.device)[0]:
        say(
            f"attention dropout {drop:g} (the model's config): the varlen kernel has no dropout, so packed "
            f"examples are attended one by one with sdpa: for llm-jp-13b's shape on an H200 about 4x slower, "
            f"with more memory (benchmarks/README.md). train.dropout=0 turns dropout off"
        )
    liger = liger_enabled(t.liger, ctx.device)
    if t.liger is True and not liger:
        say("liger kernels: not used (liger-kernel is not installed or this cell runs on CPU)")
    ctx.tracker.log_params({"train.attention_impl": impl, "train.liger_enabled": str(liger)})
    return {"use_liger_kernel": liger}


def liger_enabled(choice: Any, device: str) -> bool:
    """``train.liger``: true/auto use Liger's Triton kernels (RMSNorm, SwiGLU, RoPE) where liger-kernel is
    installed and the cell runs on a GPU; false never."""
    import importlib.util

    if choice is False or device != "cuda":
        return False
    return importlib.util.find_spec("liger_kernel") is not None


class PaddingCounter:
    """Wraps the data collator: counts the real tokens and the token slots of the training batches (those
    collated while ``training()`` is true: not the held-out ones), so a cell can log its padding fraction
    (0 for padding-free packing by construction)."""

    def __init__(self, collator: Any, training: Any = lambda: True):
        self.collator, self.training, self.real, self.slots = collator, training, 0, 0

    def __getattr__(self, name: str) -> Any:
        if name == "collator":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        if not self.training():
            return batch
        ids = batch["input_ids"]
        self.slots += ids.numel()
        mask = batch.get("attention_mask")
        self.real += int(mask.sum()) if mask is not None else int(ids.numel())
        return batch

    def fraction(self) -> float | None:
        return 1.0 - self.real / self.slots if self.slots else None


def build_sft_trainer(
    ctx: CellContext, model: Any, tokenizer: Any, train_rows: list[dict[str, str]], eval_rows: list[dict[str, str]]
):
    """TRL's SFTTrainer configured from the cell's spec (jsweep's SFT step, minus the training loop)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    spec = ctx.spec
    options = step_options(ctx, model)
    args = trainer_args(
        ctx,
        SFTConfig,
        max_length=spec.train.max_length,
        packing=spec.train.packing,
        completion_only_loss=not spec.prompt.train_on_inputs,
        dataset_num_proc=None,
        **options,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(spec) if spec.method.peft == "lora" else None,
        callbacks=callbacks_for(ctx),
    )
    trainer.data_collator = PaddingCounter(
        trainer.data_collator, lambda: trainer.model is not None and trainer.model.training
    )
    return trainer


def restore_attention(model: Any) -> None:
    """After training: plain sdpa again, so evaluation, generation and the saved config need nothing jsweep registers."""
    from jsweep.job.attention import NAME, set_attention

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if base.config._attn_implementation == NAME:
        set_attention(model, "sdpa")


def train_sft(ctx: CellContext, model: Any, tokenizer: Any) -> TrainResult:
    spec = ctx.spec

    # 1. Data: render examples in the cell's prompt format; count what max_length truncates.
    train_rows = render_pairs(ctx.train, spec, tokenizer)
    eval_rows = render_pairs(ctx.held_out, spec, tokenizer)
    lengths = sequence_lengths([r["prompt"] + r["completion"] for r in train_rows], tokenizer)
    truncated = sum(n > spec.train.max_length for n in lengths)
    ctx.log_metrics(
        {"data/train_examples": len(train_rows), "data/eval_examples": len(eval_rows), "data/truncated": truncated}
    )
    train_rows = apply_token_budget(ctx, train_rows, [min(n, spec.train.max_length) for n in lengths])
    if truncated:
        say(
            f"warning: {truncated}/{len(lengths)} training examples exceed max_length="
            f"{spec.train.max_length} and are truncated"
        )

    # 2. Trainer: completion-only loss unless train_on_inputs; LoRA through PEFT when asked; packed
    #    padding-free batches with a varlen attention kernel by default (see jsweep.job.attention).
    trainer = build_sft_trainer(ctx, model, tokenizer, train_rows, eval_rows)

    # 3. Train, then log throughput (non-padding tokens per second).
    ctx.log_metrics(run_training(ctx, trainer))
    log_final_eval_loss(ctx, trainer)
    padding = trainer.data_collator.fraction()
    if padding is not None:
        ctx.log_metrics({"train/padding_fraction": padding})
    restore_attention(trainer.model)

    # 4. Save the final model (or adapter) and tokenizer.
    return save_result(ctx, trainer, tokenizer)
