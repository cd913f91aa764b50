"""Generation through vLLM, for ``eval.backend=vllm`` (optional: ``pip install vllm``).

llm-jp-eval v2 generates with vLLM; this backend lets a cell do the same while everything else stays
jsweep's: the prompts, their token ids, the decoding of the completions and the scoring.

- :func:`backend` (used by :func:`jsweep.eval.run.evaluate_all`) makes a :class:`VllmEngine` the active
  engine for the cell's model. :func:`jsweep.eval.generate.generate` (llm-jp-eval) and
  :func:`jsweep.eval.answers.generate_answers` (samples, elyza_tasks_100, human_eval) hand their requests
  to it; evaluators that need the transformers model itself (``heldout`` loss, JGLUE through the harness)
  keep using it unchanged.
- The engine starts on the first request: the model goes to the CPU (its GPU memory freed), is saved
  under ``<cell>/vllm_model/`` (a LoRA model merged into its base with PEFT's ``merge_and_unload``, on a
  copy, so the cell's model is untouched), with jsweep's tokenizer and a generation config holding only
  that tokenizer's special tokens (so vLLM stops at the EOS jsweep's engine stops at and applies no model
  defaults), then ``vllm.LLM`` is built on it with the model's dtype, the cell's seed and most of the GPU
  memory now free.
- Requests go as ``TokensPrompt(prompt_token_ids=...)``: the ids jsweep's tokenizer gives (honouring each
  evaluator's ``add_special_tokens``), so vLLM sees the tokens the transformers engine would. Greedy
  requests are ``SamplingParams(n=1, temperature=0.0, max_tokens=...)``; the completions' token ids are
  decoded by jsweep's tokenizer exactly as the transformers engine decodes (``skip_special_tokens``).
- After each evaluator the vLLM instance is shut down and the model goes back to its device, so the next
  evaluator finds it where it was (the saved copy is reused; a later generating evaluator starts vLLM
  again, which costs its start-up time, not a second save). The saved copy is deleted when evaluation ends.

Greedy decoding through vLLM's kernels gives the transformers engine's tokens up to the numerics of
different kernels (the usual greedy tolerance: an occasional near-tie flips). Sampled answers (samples
with ``do_sample: true``) use vLLM's sampler with each answer's seed: reproducible, but not the same draws
as transformers'.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MISSING = "eval.backend=vllm: vLLM is not installed here (pip install vllm), or use eval.backend=transformers"
SAVED_DIR = "vllm_model"  # under the cell directory, while the cell is evaluated
MEMORY_HEADROOM = 0.9  # of the GPU memory free once the transformers model is on the CPU
_ACTIVE: list[VllmEngine] = []


def installed() -> bool:
    """vLLM can be imported here (checked without importing it: no torch, no CUDA)."""
    return importlib.util.find_spec("vllm") is not None


def preflight(spec: Any) -> list[str]:
    """``eval.backend=vllm`` with evaluators to run and no vLLM: one line (jsweep.eval.run.check_evaluators)."""
    if getattr(spec, "eval_backend", "transformers") == "vllm" and spec.eval and not installed():
        return [MISSING]
    return []


def active(model: Any) -> VllmEngine | None:
    """The vLLM engine serving ``model``, if evaluation runs with ``eval.backend=vllm``."""
    return next((e for e in reversed(_ACTIVE) if e.model is model), None)


@contextmanager
def backend(ctx: Any, model: Any, tokenizer: Any) -> Iterator[VllmEngine | None]:
    """The cell's generation backend while its evaluators run: a :class:`VllmEngine` for ``eval.backend=vllm``
    (closed at the end: vLLM stopped, the model back on its device, the saved copy deleted), else None."""
    spec = ctx.spec
    if getattr(spec, "eval_backend", "transformers") != "vllm":
        yield None
        return
    engine = VllmEngine(
        model,
        tokenizer,
        Path(ctx.cell_dir) / SAVED_DIR,
        seed=int(spec.seed),
        trust_remote_code=bool(spec.model.trust_remote_code),
    )
    _ACTIVE.append(engine)
    try:
        yield engine
    finally:
        _ACTIVE.remove(engine)
        engine.close()


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def save_for_vllm(model: Any, tokenizer: Any, directory: Path) -> Path:
    """The model as vLLM loads it: full weights (a LoRA model merged into its base, on a copy), jsweep's
    tokenizer, and a generation config holding only that tokenizer's special tokens."""
    import copy

    from transformers import GenerationConfig

    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    target = copy.deepcopy(model).merge_and_unload() if is_peft(model) else model
    target.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    ).save_pretrained(str(directory))
    if target is not model:
        del target
    return directory


def dtype_name(model: Any) -> str:
    """The dtype the model's weights are in (``float32``, ``bfloat16``...), as vLLM's ``dtype`` takes it: its
    input embeddings' (a LoRA model's adapter weights may be kept in float32 over a bfloat16 base)."""
    try:
        dtype = model.get_input_embeddings().weight.dtype
    except (AttributeError, NotImplementedError):
        dtype = next(model.parameters()).dtype
    return str(dtype).removeprefix("torch.")


def memory_fraction() -> float:
    """vLLM's ``gpu_memory_utilization``: MEMORY_HEADROOM of what is free now, as a share of the whole GPU."""
    import torch

    if not torch.cuda.is_available():
        return MEMORY_HEADROOM
    free, total = torch.cuda.mem_get_info()
    return round(max(0.05, MEMORY_HEADROOM * free / total), 3)


class VllmEngine:
    """One cell's model served by ``vllm.LLM`` (started on the first request, stopped by :meth:`release`)."""

    def __init__(self, model: Any, tokenizer: Any, directory: Path, *, seed: int = 0, trust_remote_code: bool = False):
        self.model, self.tokenizer, self.directory = model, tokenizer, Path(directory)
        self.seed, self.trust_remote_code = seed, trust_remote_code
        self.llm: Any = None
        self.home: Any = None  # the model's device while vLLM runs (it waits on the CPU)
        self.saved = False
        self.starts = 0

    def start(self) -> None:
        if self.llm is not None:
            return
        import torch
        import vllm

        from jsweep.job.context import say

        device = next(self.model.parameters()).device
        if device.type != "cpu":
            self.home = device
            self.model.to("cpu")
            torch.cuda.empty_cache()
        if not self.saved:
            save_for_vllm(self.model, self.tokenizer, self.directory)
            self.saved = True
        kwargs: dict[str, Any] = {
            "model": str(self.directory),
            "tokenizer": str(self.directory),
            "dtype": dtype_name(self.model),
            "seed": self.seed,
            "gpu_memory_utilization": memory_fraction(),
            "trust_remote_code": self.trust_remote_code,
        }
        say(
            f"vllm {getattr(vllm, '__version__', '?')}: serving {self.directory} (dtype {kwargs['dtype']}, "
            f"seed {self.seed}, gpu_memory_utilization {kwargs['gpu_memory_utilization']})"
        )
        self.llm = vllm.LLM(**kwargs)
        self.starts += 1

    def complete(self, prompt_ids: Sequence[Sequence[int]], params: Sequence[Any], label: str) -> list[list[int]]:
        """The completion token ids of each prompt (token ids), in order; ``params``: one SamplingParams each."""
        import time

        import vllm

        from jsweep.job.context import say

        if not prompt_ids:
            return []
        self.start()
        t0 = time.monotonic()
        prompts = [vllm.TokensPrompt(prompt_token_ids=[int(t) for t in ids]) for ids in prompt_ids]
        outputs = self.llm.generate(prompts, list(params), use_tqdm=False)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vllm returned {len(outputs)} outputs for {len(prompts)} prompts")
        seconds = time.monotonic() - t0
        say(f"{label}: {len(prompts)}/{len(prompts)} through vllm ({len(prompts) / max(seconds, 1e-9):.1f}/s)")
        return [list(o.outputs[0].token_ids) for o in outputs]

    def greedy(
        self,
        prompt_ids: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        label: str,
        *,
        repetition_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Greedy completions (token ids) of each prompt, with its own ``max_new_tokens``."""
        from vllm import SamplingParams

        params = [
            SamplingParams(n=1, temperature=0.0, max_tokens=int(m), repetition_penalty=repetition_penalty)
            for m in max_new_tokens
        ]
        return self.complete(prompt_ids, params, label)

    def release(self) -> None:
        """Stop vLLM (its GPU memory freed) and put the model back on its device (also when vLLM failed to start)."""
        if self.llm is not None:
            import gc

            import torch

            core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()  # vLLM's engine-core process, and the GPU memory it holds
            self.llm = None
            gc.collect()
            try:
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
            except ImportError:
                pass
            else:
                cleanup_dist_env_and_memory()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if self.home is not None:
            self.model.to(self.home)
            self.home = None

    def close(self) -> None:
        """Stop vLLM and delete the saved copy."""
        try:
            self.release()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
