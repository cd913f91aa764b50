"""The harness's model wrapper for JGLUE: lm-evaluation-harness's ``HFLM``, with generation tasks
(JSQuAD) optionally decoded by jsweep's generation engine (``eval.jglue.generation: engine``).

The harness's own ``generate_until`` sizes its batch once, for a full-length context
(``max_length`` tokens, with the log-softmax of every position), and checks the stop strings of
every row after every step. jsweep's engine (:mod:`jsweep.eval.generate`) sizes batches by free
memory for the actual prompt lengths and shares the few-shot prefix of a batch. Greedy decoding
gives the same tokens either way (up to the numerics of batched kernels); the answers are then cut
at the first stop string exactly as the harness cuts them (its own ``postprocess_generated_text``).
Requests that sample, or whose context would need left truncation, go to the harness's path.

Imports lm_eval and torch: use from the evaluator at scoring time only.
"""

from __future__ import annotations

from typing import Any

GENERATION = ("harness", "engine")


def harness_lm(model: Any, tokenizer: Any, generation: str = "harness", **hflm_args: Any):
    """An ``HFLM`` over the in-memory ``model``; ``generation="engine"``: generate_until through the engine."""
    from lm_eval.models import huggingface as hf

    if generation == "harness":
        return hf.HFLM(pretrained=model, tokenizer=tokenizer, **hflm_args)
    if generation != "engine":
        raise ValueError(f"generation must be one of {', '.join(GENERATION)}, got {generation!r}")

    class EngineLM(hf.HFLM):
        def generate_until(self, requests, disable_tqdm: bool = False):
            from jsweep.eval.generate import Request, generate

            think = getattr(self, "think_end_token", None)
            if think is not None and not isinstance(think, str):
                return super().generate_until(requests, disable_tqdm)           # token-id thinking marker
            eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
            plans = []
            for context, gen_kwargs in (r.args for r in requests):
                kwargs = hf.normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
                until = hf.handle_stop_sequences(kwargs.pop("until", None), eos=eos)
                max_gen = int(kwargs.pop("max_gen_toks"))
                kwargs.pop("temperature", None)
                if kwargs.pop("do_sample", False) or kwargs:
                    return super().generate_until(requests, disable_tqdm)   # sampling or extra options
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
            for context, _, max_gen in plans:
                n = len(self.tokenizer(context, add_special_tokens=add_special).input_ids)
                if n > self.max_length - max_gen:
                    return super().generate_until(requests, disable_tqdm)   # needs left truncation
            texts = generate(self.model, self.tokenizer, [Request(c, m) for c, _, m in plans],
                             batch_size=self.batch_size if isinstance(self.batch_size, int) else "auto",
                             label="jglue generate_until", add_special_tokens=add_special, share_prefix=True)
            out = []
            for (context, until, _), text, req in zip(plans, texts, requests):
                s = hf.postprocess_generated_text(generation=text, stop=until, think_end_token=think)
                out.append(s)
                self.cache_hook.add_partial("generate_until", req.args, s)
            return out

    return EngineLM(pretrained=model, tokenizer=tokenizer, **hflm_args)
