"""The harness's model wrapper for JGLUE: lm-evaluation-harness's ``HFLM``, with generation tasks
(JSQuAD) optionally decoded by jsweep's generation engine (``eval.jglue.generation: engine``), and
with ``batch_size: auto`` on a GPU, loglikelihood batches (JCommonsenseQA, JNLI, MARC-ja) sized from
free memory instead of the harness's search.

The harness's ``auto`` search runs five full forward passes of the longest request at each trial size
(from 512 down, halving on out-of-memory): 20 s for JCommonsenseQA + JNLI on an H200, a third of their
evaluation. jsweep sizes the batch from what one row costs: the logits and their log-softmax over the
vocabulary for every position (the harness keeps both), plus the activations, for the longest request,
within half of the free memory. An out-of-memory error falls back to the harness's own search.

The harness's own ``generate_until`` sizes its batch once, for a full-length context
(``max_length`` tokens, with the log-softmax of every position), and checks the stop strings of
every row after every step. jsweep's engine (:mod:`jsweep.eval.generate`) sizes batches by free
memory for the actual prompt lengths and shares the few-shot prefix of a batch. Greedy decoding
gives the same tokens either way (up to the numerics of batched kernels); the answers are then cut
at the first stop string exactly as the harness cuts them (its own ``postprocess_generated_text``).
Requests that sample, or whose context would need left truncation, go to the harness's path.

Loglikelihood requests (``eval.jglue.loglikelihood: shared``, the default) are scored with each shared
context computed once, one row per document (:mod:`jsweep.eval.jglue.loglikelihood`); ``harness``
keeps the harness's own path, sized as above.

Imports lm_eval and torch: use from the evaluator at scoring time only.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GENERATION = ("harness", "engine")
LOGLIKELIHOOD = ("shared", "harness")


def harness_lm(
    model: Any, tokenizer: Any, generation: str = "harness", loglikelihood: str = "harness", **hflm_args: Any
):
    """An ``HFLM`` over the in-memory ``model``; ``generation="engine"``: generate_until through the engine;
    ``loglikelihood="shared"``: each shared context computed once (:mod:`jsweep.eval.jglue.loglikelihood`)."""
    from lm_eval.models import huggingface as hf

    from jsweep.eval.jglue import loglikelihood as LL

    if generation not in GENERATION:
        raise ValueError(f"generation must be one of {', '.join(GENERATION)}, got {generation!r}")
    if loglikelihood not in LOGLIKELIHOOD:
        raise ValueError(f"loglikelihood must be one of {', '.join(LOGLIKELIHOOD)}, got {loglikelihood!r}")

    class JsweepLM(hf.HFLM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            if loglikelihood != "shared" or not LL.supported(self):
                return super().loglikelihood(requests, disable_tqdm)
            # the harness's token ids, the unique strings encoded in batches
            return self._loglikelihood_tokens(LL.encode_pairs(self, [r.args for r in requests]), disable_tqdm)

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if loglikelihood == "shared" and requests and not override_bs and LL.supported(self):
                return self._shared(requests, disable_tqdm)
            return self._harness_loglikelihood(requests, disable_tqdm, override_bs)

        def _shared(self, requests, disable_tqdm: bool):
            from jsweep.job.context import say

            fits = [len(c) + len(t) <= self.max_length + 1 for _, c, t in requests]
            res: list = [None] * len(requests)
            mine = [i for i, ok in enumerate(fits) if ok]
            rest = [i for i, ok in enumerate(fits) if not ok]  # the harness truncates these on the left
            try:
                shared = LL.loglikelihood_shared(self, [requests[i] for i in mine], say)
            except (RuntimeError, TypeError, ValueError) as exc:  # e.g. a model that takes no 4D mask
                say(
                    f"jglue: shared-context scoring failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                    f"the harness scores the requests (eval.jglue.loglikelihood=harness skips this attempt)"
                )
                return self._harness_loglikelihood(requests, disable_tqdm)
            for i, answer in zip(mine, shared):
                res[i] = answer
                if requests[i][0] is not None:
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            if rest:
                for i, answer in zip(rest, self._harness_loglikelihood([requests[i] for i in rest], disable_tqdm)):
                    res[i] = answer
            return res

        def _harness_loglikelihood(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if self.batch_size != "auto" or override_bs or not requests or self.device.type != "cuda":
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            import torch

            longest = max(min(len(ctx) + len(cont), self.max_length + 1) - 1 for _, ctx, cont in requests)
            rows = loglikelihood_rows(self.model, longest, self.max_batch_size)
            from jsweep.job.context import say

            say(f"jglue: loglikelihood batch {rows} (longest request {longest} tokens, sized from free memory)")
            try:
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs=rows)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                if "out of memory" not in str(exc).lower():
                    raise
                torch.cuda.empty_cache()
                say(f"jglue: out of memory with {rows} rows; the harness searches the batch size")
                return super()._loglikelihood_tokens(requests, disable_tqdm)

        def generate_until(self, requests, disable_tqdm: bool = False):
            if generation == "harness":
                return super().generate_until(requests, disable_tqdm)
            from jsweep.eval.generate import Request, generate

            think = getattr(self, "think_end_token", None)
            if think is not None and not isinstance(think, str):
                return super().generate_until(requests, disable_tqdm)  # token-id thinking marker
            eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
            plans = []
            for context, gen_kwargs in (r.args for r in requests):
                kwargs = hf.normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
                until = hf.handle_stop_sequences(kwargs.pop("until", None), eos=eos)
                max_gen = int(kwargs.pop("max_gen_toks"))
                kwargs.pop("temperature", None)
                if kwargs.pop("do_sample", False) or kwargs:
                    return super().generate_until(requests, disable_tqdm)  # sampling or extra options
                plans.append((context, until, max_gen))
            if not plans:
                return []
            # the same token ids as the harness's tok_batch_encode (BOS as it decides)
            special: dict[str, bool] = {}
            if hf.has_bos_prefix(plans[0][0], getattr(self.tokenizer, "bos_token", None)):
                special = {"add_special_tokens": False}
            elif self.add_bos_token is not None:
                special = {"add_special_tokens": bool(self.add_bos_token)}
            add_special = special.get("add_special_tokens", True)
            from jsweep.eval.generate import encode_batch

            lengths = map(len, encode_batch(self.tokenizer, [c for c, _, _ in plans], add_special_tokens=add_special))
            for n, (_, _, max_gen) in zip(lengths, plans):
                if n > self.max_length - max_gen:
                    return super().generate_until(requests, disable_tqdm)  # needs left truncation
            texts = generate(
                self.model,
                self.tokenizer,
                [Request(c, m) for c, _, m in plans],
                batch_size=self.batch_size if isinstance(self.batch_size, int) else "auto",
                label="jglue generate_until",
                add_special_tokens=add_special,
                share_prefix=True,
                use_backend=False,
            )  # the harness keeps the transformers model (eval.backend)
            out = []
            for (_context, until, _), text, req in zip(plans, texts, requests):
                s = hf.postprocess_generated_text(generation=text, stop=until, think_end_token=think)
                out.append(s)
                self.cache_hook.add_partial("generate_until", req.args, s)
            return out

    return JsweepLM(pretrained=model, tokenizer=tokenizer, **hflm_args)


@contextmanager
def cached_templates() -> Iterator[None]:
    """The harness renders every prompt field of every document through ``lm_eval.utils.apply_template``,
    which compiles the Jinja template again on each call (``env.from_string``): 5-12 ms per document,
    37-49 s of building contexts for the JGLUE dev sets on the H200 machine. Inside this block the
    compiled template is kept per template string (the harness's own environment and render: the same
    text); outside it the harness is untouched."""
    from lm_eval import utils

    original = utils.apply_template
    compiled = functools.lru_cache(maxsize=256)(utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compiled(template).render(**doc)

    utils.apply_template = apply_template
    try:
        yield
    finally:
        utils.apply_template = original


LOGLIKELIHOOD_MEMORY_FRACTION = 0.5  # of the free GPU memory a loglikelihood batch may plan to use


def loglikelihood_rows(model: Any, tokens: int, max_rows: int) -> int:
    """Rows of ``tokens`` tokens per harness loglikelihood batch that fit in half the free GPU memory:
    per token, the logits and their log-softmax over the vocabulary (model dtype, fp32 where the model is)
    and the hidden activations (as the generation engine counts them)."""
    import torch

    from jsweep.eval.jglue.loglikelihood import model_sizes

    elem, vocab, hidden, inter, _ = model_sizes(model)
    per_token = 3 * vocab * elem + 4 * (hidden + inter) * elem
    torch.cuda.empty_cache()  # blocks the allocator caches from an earlier run count as free
    free, _ = torch.cuda.mem_get_info(next(model.parameters()).device)
    return max(1, min(int(max_rows), int(LOGLIKELIHOOD_MEMORY_FRACTION * free / (per_token * max(tokens, 1)))))
