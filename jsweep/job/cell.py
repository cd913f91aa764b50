"""Run one cell in this process: ``python -m jsweep.job.cell <cell_dir>``.

The launcher wrote ``<cell_dir>/cell.json`` (the typed spec, the MLflow run id, the data
provenance). This script reads top to bottom: setup, data, model, train, evaluate, finish.
Whatever happens, it leaves ``status.json`` (and ``metrics.json``) in the cell directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from jsweep import cellstate, registries
from jsweep.data.contamination import check_contamination
from jsweep.data.load import load_examples, split_train_eval
from jsweep.data.provenance import log_dataset_input
from jsweep.distributed import check_offload_memory, host_memory_bytes
from jsweep.errors import ConfigError
from jsweep.eval.run import evaluate_all
from jsweep.files import write_json
from jsweep.job.context import CellContext, follow_launcher, say
from jsweep.schema import cell_from_dict
from jsweep.tracking import CellTracker, NullTracker


class Terminated(Exception):
    """SIGTERM from the launcher (Ctrl-C on the sweep, or preemption)."""


def _on_sigterm(signum, frame):
    raise Terminated(f"received signal {signum}")


def write_status(cell_dir: Path, status: str, **fields) -> None:
    write_json(cell_dir / cellstate.STATUS, {"status": status, "time": time.time(), **fields})


def last_checkpoint(cell_dir: Path) -> Path | None:
    """The newest complete trainer checkpoint of this cell, if an earlier attempt left one."""
    found = cellstate.checkpoints(cell_dir)
    return found[-1] if found else None


def setup(ctx: CellContext):
    """Seed, logged config, data (with provenance and contamination check), tokenizer and model."""
    from transformers import set_seed

    spec = ctx.spec
    set_seed(spec.seed)
    ctx.tracker.log_dict(spec.to_dict(), "config.yaml")
    if ctx.deepspeed_config:
        ctx.tracker.log_artifact(ctx.deepspeed_config)  # the generated DeepSpeed config
    data = load_examples(spec.dataset, builtin_model=spec.model.builtin)
    ctx.train, ctx.held_out = split_train_eval(data.examples, spec.train.eval_fraction, spec.dataset.seed)
    ctx.tracker.set_tags({"jsweep.data_digest": data.digest, "jsweep.data_source": data.source.describe()})
    log_dataset_input(ctx.tracker, data, spec)
    contamination, flags = check_contamination(spec, ctx.train)
    ctx.log_metrics(contamination)
    ctx.tracker.set_tags(flags)
    if flags.get("jsweep.contamination", "none") != "none":
        detail = "; ".join(v for k, v in flags.items() if k.startswith("jsweep.contamination."))
        say(f"warning: training data overlaps the evaluation sets: {detail}")
    ctx.log_metrics({"data/read": data.report.read, "data/dropped": sum(data.report.dropped.values())})
    if data.report.dropped:
        say(f"dropped records: {data.report.dropped}")
    say(f"data: {len(ctx.train)} train / {len(ctx.held_out)} held-out examples from {data.source.describe()}")

    from jsweep.models.load import adapter_base, load_model, load_tokenizer, needs_saved_base, save_base, set_dropout

    if ctx.deepspeed_config and spec.distributed.offload_optimizer:
        # before minutes of building and sharding a model the node cannot hold (the kernel's SIGKILL says nothing)
        from jsweep.models.load import count_parameters

        params = count_parameters(spec.model, spec.method.init_from)
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        problem = check_offload_memory(spec, params, per_node, host_memory_bytes())
        if problem:
            raise ConfigError(problem)
    if ctx.deepspeed_config and spec.distributed.zero_stage == 3:
        # ZeRO-3: build the model partitioned across ranks (zero.Init) instead of whole on each,
        # which needs the process group up before the model is built.
        import deepspeed
        import torch
        from transformers.integrations import HfDeepSpeedConfig

        if ctx.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        deepspeed.init_distributed(dist_backend="nccl" if ctx.device == "cuda" else "gloo")

        ctx.keep_alive = HfDeepSpeedConfig(str(ctx.deepspeed_config))
    tokenizer = load_tokenizer(spec.model, spec.seed)
    # LoRA over random weights: a resumed attempt reuses the base the first attempt saved.
    keep_base = needs_saved_base(spec)
    saved_base = adapter_base(ctx.model_dir) if keep_base else None
    model = load_model(spec.model, device=ctx.device, seed=spec.seed, path=saved_base or spec.method.init_from)
    if keep_base and not saved_base:
        save_base(model, ctx.model_dir / "base", rank=ctx.rank)
    if spec.train.dropout is not None:
        changed = set_dropout(model, spec.train.dropout)
        say(f"dropout: {spec.train.dropout:g} in the model's config and its {changed} dropout modules (train.dropout)")
    ctx.n_params = sum(getattr(p, "ds_numel", 0) or p.numel() for p in model.parameters())
    ctx.log_metrics({"model/parameters": ctx.n_params})
    say(
        f"model: {spec.model.name} ({ctx.n_params / 1e6:.2f}M parameters) on {ctx.device}"
        + (f" x{ctx.world_size} ({spec.distributed.name})" if ctx.world_size > 1 else "")
    )
    return model, tokenizer


def train(ctx: CellContext, model, tokenizer):
    """Train with the method's trainer, resuming from the last checkpoint of an interrupted attempt."""
    ctx.resume_from = last_checkpoint(ctx.cell_dir)
    if ctx.resume_from:
        say(f"resuming from {ctx.resume_from.name}")
        ctx.tracker.set_tags({"jsweep.resumed_from": ctx.resume_from.name})
    trainer = registries.TRAINERS.get(ctx.spec.method.trainer)
    return trainer(ctx, model, tokenizer)


def flops_per_token(ctx: CellContext) -> float:
    """Model FLOPs of one trained token: 6 * params (forward, input and weight gradients); 4 * params for
    LoRA, whose frozen weights need no weight gradient (the adapters' own FLOPs are negligible)."""
    return (4 if ctx.spec.method.peft == "lora" else 6) * ctx.n_params


def log_efficiency(ctx: CellContext) -> None:
    """tokens/s per GPU, MFU (model FLOPs per token * tokens/s over the GPU's bf16 peak), peak GPU memory (this rank)."""
    import torch

    from jsweep.distributed import peak_tflops

    tps = ctx.metrics.get("train/tokens_per_second")
    out = {}
    if tps:
        out["train/tokens_per_second_per_gpu"] = tps / ctx.world_size
    if torch.cuda.is_available():
        out["gpu/peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        peak = peak_tflops(torch.cuda.get_device_name(0))
        if tps and peak and ctx.n_params:
            out["train/mfu"] = flops_per_token(ctx) * tps / (peak * 1e12 * ctx.world_size)
        if peak:
            ctx.tracker.set_tags({"jsweep.gpu": torch.cuda.get_device_name(0), "jsweep.gpu_peak_tflops": peak})
    ctx.log_metrics(out)


def load_saved(ctx: CellContext):
    """The cell's saved model (full weights or a LoRA adapter) and tokenizer, for the eval stage."""
    from jsweep.models.load import load_for_eval

    return load_for_eval(str(ctx.model_dir), ctx.spec, ctx.device)


TRAINED = "trained.json"  # written once the model is trained and saved: a later attempt only evaluates


def trained_before(ctx: CellContext) -> dict[str, float] | None:
    """The training metrics of an earlier attempt that trained and saved the model (it was stopped while
    evaluating); None when training must run."""
    record = cellstate.read_json(ctx.cell_dir / TRAINED)
    model = ctx.model_dir
    if not record or not ((model / "config.json").exists() or (model / "adapter_config.json").exists()):
        return None
    return record.get("metrics") or {}


def run_cell(ctx: CellContext, stage: str = "all") -> None:
    """stage: all (one process: train then evaluate), train (a rank of a multi-GPU cell), eval."""
    done = trained_before(ctx) if stage == "all" and ctx.spec.train.save_model else None
    if done is not None:
        # Stopped while evaluating: the saved model is the trained one. Training again from the final
        # checkpoint would train past max_steps; the model is evaluated as it was saved.
        say("the model was trained and saved by an earlier attempt; evaluating it")
        ctx.metrics.update(done)
        with ctx.phase("eval"):
            model, tokenizer = load_saved(ctx)
    elif stage in ("all", "train"):
        with ctx.phase("setup"):
            model, tokenizer = setup(ctx)
        with ctx.phase("train"):
            result = train(ctx, model, tokenizer)
        log_efficiency(ctx)
        ctx.log_metrics({"gpu/count": ctx.world_size if ctx.device == "cuda" else 0})
        if stage == "train":
            return
        if ctx.spec.train.save_model and ctx.spec.eval and ctx.rank == 0:
            write_json(ctx.cell_dir / TRAINED, {"metrics": ctx.metrics, "time": time.time()})
        model, tokenizer = result.model, result.tokenizer
    else:
        with ctx.phase("eval"):  # the eval stage's model load counts as evaluation time
            model, tokenizer = load_saved(ctx)
    with ctx.phase("eval"):
        evaluate_all(ctx, model, tokenizer)


def cell_time(gpus: int, wall: float, prior: dict[str, float]) -> tuple[float, float]:
    """Wall seconds and GPU-hours of a cell. ``wall`` is this process's time; ``prior`` the train
    stage's metrics when this is the eval stage of a multi-GPU cell, which runs on one GPU while the
    cell's other GPUs go back to the launcher."""
    trained = sum(v for k, v in prior.items() if k in ("time/setup_seconds", "time/train_seconds"))
    if not prior:
        return wall, gpus * wall / 3600
    return trained + wall, (gpus * trained + min(gpus, 1) * wall) / 3600


def finish(ctx: CellContext, stage: str) -> None:
    spec, cell_dir = ctx.spec, ctx.cell_dir
    if stage == "train" and spec.eval:
        write_status(cell_dir, "TRAINED", metrics=ctx.metrics)
        say("trained; evaluating the saved model in one process")
        return
    prior = ctx.prior_metrics if stage == "eval" else {}
    gpus = int(prior.get("gpu/count", ctx.world_size if ctx.device == "cuda" else 0))
    total, hours = cell_time(gpus, sum(ctx.timings.values()), prior)
    ctx.log_metrics({"time/total_seconds": total, "gpu/count": gpus, "gpu/hours": hours})
    if spec.train.delete_checkpoints:
        shutil.rmtree(cell_dir / cellstate.CHECKPOINTS, ignore_errors=True)
    ctx.tracker.set_tags({"jsweep.complete": "true"})
    write_status(cell_dir, "FINISHED", complete=True, metrics=ctx.metrics)
    ctx.tracker.end("FINISHED")
    say("done")


def main(argv: list[str]) -> int:
    cell_dir = Path(argv[0]).resolve()
    stage = argv[argv.index("--stage") + 1] if "--stage" in argv else "all"
    from jsweep.redaction import load_env_secrets, restore

    # cell.json has its secrets masked; the launcher hands them over in the environment.
    meta = restore(json.loads((cell_dir / cellstate.CELL).read_text()), load_env_secrets())
    spec = cell_from_dict(meta["spec"])
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    lead = rank == 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    if lead:
        write_status(cell_dir, "RUNNING", pid=os.getpid(), attempt=meta.get("attempt", 1), stage=stage)

    import torch

    tracker = CellTracker(meta["tracking_uri"], meta["run_id"], cell_dir) if lead else NullTracker()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ds_config = cell_dir / "deepspeed.json"
    ctx = CellContext(
        spec,
        cell_dir,
        tracker,
        device,
        attempt=meta.get("attempt", 1),
        rank=rank,
        world_size=world,
        deepspeed_config=ds_config if stage != "eval" and ds_config.exists() else None,
    )
    if stage == "eval":
        ctx.metrics = json.loads((cell_dir / cellstate.METRICS).read_text())
        ctx.prior_metrics = dict(ctx.metrics)
    ctx.load_logged()
    if lead and world == 1:
        follow_launcher(cell_dir / cellstate.LOG)
    try:
        run_cell(ctx, stage)
    except BaseException as exc:  # every failure is recorded, then the process exits non-zero
        killed = isinstance(exc, (Terminated, KeyboardInterrupt))
        status = "KILLED" if killed else "FAILED"
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        if lead:
            write_status(cell_dir, status, error_class=type(exc).__name__, error=str(exc)[:2000], traceback=tb[-8000:])
            try:
                tracker.set_tags({"jsweep.error_class": type(exc).__name__, "jsweep.error": str(exc)[:1000]})
                tracker.end(status)
            except Exception:  # the launcher marks the run failed if this could not
                pass
        return 1
    if lead:
        finish(ctx, stage)
    _close_process_group()
    return 0


def _close_process_group() -> None:
    """Tear down a multi-process cell's process group before the interpreter exits. Left to exit, its
    communication threads were sometimes destroyed while still joinable, and rank 0 aborted
    ("terminate called without an active exception", SIGABRT) after the cell had finished."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        # every rank reaches teardown before any destroys its group: a rank that tore down while the lead
        # was still saving aborted the same way (a 2-process gloo cell in the CPU suite)
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
