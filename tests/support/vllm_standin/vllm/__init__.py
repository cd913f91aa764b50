"""A scripted STAND-IN for the ``vllm`` package, for tests only (tests/test_vllm_backend.py).

It is NOT vLLM and NOT a mock of something usable on this machine: vLLM needs a GPU, and the GPU
machines here have no network to install it. It has the public signatures of vllm 0.33.0 that
jsweep calls (``vllm/entrypoints/llm.py``, ``vllm/sampling_params.py``, ``vllm/inputs/llm.py``,
``vllm/outputs.py`` of its wheel), and behaves as vLLM does for what jsweep relies on:

- ``LLM(model, *, tokenizer=None, dtype="auto", seed=0, gpu_memory_utilization=0.92, ...)`` loads the
  directory with transformers, with the tokenizer and the generation config's EOS ids as stop tokens
  (vLLM adds the tokenizer's EOS and the generation config's ``eos_token_id`` to every request's stops);
- ``LLM.generate(prompts, sampling_params, *, use_tqdm=True, ...)`` takes ``TokensPrompt`` dicts and one
  SamplingParams or one per prompt, decodes greedily for ``temperature=0`` (sampling with the request's
  seed otherwise), one prompt at a time, and returns ``RequestOutput`` objects in prompt order whose
  ``outputs[0].token_ids`` end with the EOS token when generation stopped there (as vLLM's do).

Every constructor call and request is recorded in ``CALLS`` and, when ``JSWEEP_VLLM_STANDIN_LOG`` names a
file, appended to it as JSON lines, so a test can check what jsweep handed over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NotRequired, TypedDict

__version__ = "0.33.0-standin"
CALLS: list[dict[str, Any]] = []


def _record(entry: dict[str, Any]) -> None:
    CALLS.append(entry)
    path = os.environ.get("JSWEEP_VLLM_STANDIN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


class TokensPrompt(TypedDict):
    """vllm.inputs.llm.TokensPrompt (a TypedDict there too)."""

    prompt_token_ids: list[int]
    prompt: NotRequired[str]


@dataclass
class SamplingParams:
    """The fields of vllm.sampling_params.SamplingParams that jsweep sets, with vLLM's defaults."""

    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    detokenize: bool = True
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        if self.temperature < 1e-5:  # vLLM: zero temperature means greedy sampling
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0
        if self.top_k < -1:
            raise ValueError(f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: Sequence[int]
    cumulative_logprob: float | None = None
    logprobs: Any = None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True


class LLM:
    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        enforce_eager: bool = False,
        **kwargs: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        _record(
            {
                "call": "LLM",
                "model": model,
                "tokenizer": tokenizer,
                "dtype": dtype,
                "seed": seed,
                "gpu_memory_utilization": gpu_memory_utilization,
                "trust_remote_code": trust_remote_code,
                "files": sorted(os.listdir(model)),
            }
        )
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or model, trust_remote_code=trust_remote_code)
        eos = GenerationConfig.from_pretrained(model).eos_token_id
        self.eos_ids = sorted({self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None})
        self.seed, self.requests = seed, 0

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = True,
        lora_request: Any = None,
        priority: Any = None,
        tokenization_kwargs: Any = None,
        mm_processor_kwargs: Any = None,
    ) -> list[RequestOutput]:
        import torch

        prompts = list(prompts) if isinstance(prompts, (list, tuple)) else [prompts]
        if sampling_params is None:
            sampling_params = SamplingParams()
        params: list[SamplingParams] = (
            list(sampling_params) if isinstance(sampling_params, (list, tuple)) else [sampling_params] * len(prompts)
        )  # type: ignore[list-item]
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        out = []
        for prompt, p in zip(prompts, params):
            if not isinstance(prompt, dict) or "prompt_token_ids" not in prompt:
                raise TypeError(f"the stand-in takes TokensPrompt only, got {type(prompt).__name__}")
            ids = list(prompt["prompt_token_ids"])
            _record({"call": "generate", "prompt_token_ids": ids, "sampling_params": asdict(p), "use_tqdm": use_tqdm})
            stops = sorted(set(self.eos_ids) | set(p.stop_token_ids or [])) if not p.ignore_eos else None
            greedy = p.temperature < 1e-5
            kwargs: dict[str, Any] = {
                "do_sample": not greedy,
                "num_beams": 1,
                "repetition_penalty": p.repetition_penalty,
            }
            if greedy:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            else:
                torch.manual_seed(self.seed if p.seed is None else p.seed)
                kwargs.update(temperature=p.temperature, top_p=p.top_p, top_k=p.top_k if p.top_k > 0 else None)
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    max_new_tokens=p.max_tokens,
                    eos_token_id=stops,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **kwargs,
                )
            token_ids = gen[0, len(ids) :].tolist()
            finish = "length"
            for k, t in enumerate(token_ids):
                if stops and t in stops:
                    token_ids, finish = token_ids[: k + 1], "stop"
                    break
            text = self.tokenizer.decode(token_ids, skip_special_tokens=p.skip_special_tokens) if p.detokenize else ""
            out.append(
                RequestOutput(
                    str(self.requests), None, ids, None, [CompletionOutput(0, text, token_ids, finish_reason=finish)]
                )
            )
            self.requests += 1
        return out
