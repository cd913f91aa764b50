"""Load a model preset: builtin tiny, a hub id (honours HF_HUB_OFFLINE), a local path, or random init."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from jsweep.schema import ModelSpec


def _config_args(arch: dict[str, Any]) -> dict[str, Any]:
    """Translate the preset's generic arch keys to the model type's config keys."""
    args = {k: v for k, v in arch.items() if k != "model_type"}
    if arch.get("model_type") == "gpt2":
        generic = {
            "n_embd": "hidden_size",
            "n_layer": "num_hidden_layers",
            "n_head": "num_attention_heads",
            "n_inner": "intermediate_size",
            "n_positions": "max_position_embeddings",
            "vocab_size": "vocab_size",
        }
        # any other key is GPT-2's own (attn_pdrop, resid_pdrop, embd_pdrop, activation_function...)
        own = {k: v for k, v in args.items() if k not in generic.values() and k != "num_key_value_heads"}
        args = {name: args.get(key) for name, key in generic.items()} | own
    elif arch.get("model_type") == "gpt_neox":
        args.pop("num_key_value_heads", None)
    return {k: v for k, v in args.items() if v is not None}


def torch_dtype(name: str, device: str):
    import torch

    if device == "cpu" and name in ("bfloat16", "float16"):
        return torch.float32  # CPU cells train in fp32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(name, "auto")


def load_tokenizer(spec: ModelSpec, seed: int = 0):
    from transformers import AutoTokenizer

    if spec.builtin:
        from jsweep.models.tiny import build_tiny

        return AutoTokenizer.from_pretrained(str(build_tiny(spec.arch, seed)))
    try:
        tok = AutoTokenizer.from_pretrained(
            spec.source, revision=spec.revision, trust_remote_code=spec.trust_remote_code
        )
    except OSError:
        if spec.init != "random":
            raise
        # Random-init throughput runs need no real vocabulary: fall back to the builtin Japanese tokenizer.
        from jsweep.models.tiny import build_tiny

        tok = AutoTokenizer.from_pretrained(
            str(
                build_tiny(
                    {
                        "model_type": "llama",
                        "vocab_size": 2048,
                        "hidden_size": 64,
                        "intermediate_size": 176,
                        "num_hidden_layers": 2,
                        "num_attention_heads": 4,
                        "num_key_value_heads": 2,
                        "max_position_embeddings": 1024,
                    },
                    seed,
                )
            )
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


BASE_SUBDIR = "base"  # inside a LoRA adapter directory: the random base weights the adapter was trained over


def needs_saved_base(spec) -> bool:
    """A LoRA cell over randomly initialised weights: its adapter means nothing without those weights,
    which exist nowhere else, so they are saved beside the adapter (``model/base``)."""
    return (
        spec.method.peft == "lora"
        and spec.model.init == "random"
        and not spec.model.builtin
        and spec.method.init_from is None
        and spec.train.save_model
    )


def adapter_base(adapter: str | Path) -> str | None:
    """The base weights saved inside an adapter directory, if any (see ``needs_saved_base``)."""
    base = Path(adapter) / BASE_SUBDIR
    return str(base) if (base / "config.json").exists() else None


def save_base(model, out: Path, *, rank: int) -> None:
    """Save ``model`` (before LoRA wraps it) to ``out``. Collective under ZeRO-3: every rank takes
    part in gathering each parameter; rank 0 writes."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    state = None
    if is_deepspeed_zero3_enabled():
        import deepspeed

        state = {}
        for name, param in model.named_parameters():
            with deepspeed.zero.GatheredParameters([param]):
                if rank == 0:
                    state[name] = param.detach().cpu().clone()
        params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
        state.update({k: v.cpu() for k, v in model.state_dict().items() if k not in params})  # buffers
    if rank == 0:
        model.save_pretrained(str(out), state_dict=state)


def set_dropout(model, p: float) -> int:
    """``train.dropout``: every dropout probability of the model set to ``p``, in its config (attention,
    residual, embedding, hidden...: the keys that name a dropout) and in the modules built from it
    (``nn.Dropout`` layers, and attention modules that keep a float ``attention_dropout``). Returns
    how many modules changed."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    for key, value in list(vars(config).items()):
        if ("dropout" in key or key.endswith("pdrop")) and isinstance(value, float):
            setattr(config, key, float(p))
    changed = 0
    for module in base.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p, changed = float(p), changed + 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout, changed = float(p), changed + 1
    return changed


def is_adapter_dir(path: str | Path) -> bool:
    """A PEFT adapter directory (adapter_config.json) rather than a full model (config.json)."""
    p = Path(os.path.expanduser(str(path)))
    return (p / "adapter_config.json").exists() and not (p / "config.json").exists()


def _weights_source(spec: ModelSpec, path: str | None, seed: int) -> tuple[str, str | None] | None:
    """Where ``load_model`` reads a full model from, and at which hub revision: ``path`` (resolved, not a
    LoRA adapter), the built tiny model's directory, or the preset's source; None when it builds random
    weights from ``spec.arch``."""
    if path is not None:
        return path, None
    if spec.init == "random" and not spec.builtin:
        return None
    if spec.builtin:
        from jsweep.models.tiny import build_tiny

        return str(build_tiny(spec.arch, seed)), None
    return spec.source, spec.revision


def count_parameters(spec: ModelSpec, path: str | None = None) -> int:
    """The parameter count of the model ``load_model`` would load, from its config alone: the model is
    built on the meta device, so no weights are read or allocated (seconds for 13B)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if path is not None:
        path = str(Path(os.path.expanduser(str(path))).resolve())
        if is_adapter_dir(path):
            path = None  # a LoRA adapter is merged into the preset's base: the base's count
    found = _weights_source(spec, path, seed=0)  # a tiny model's seed changes its weights, not its shape
    if found is None:
        config = AutoConfig.for_model(spec.arch["model_type"], **_config_args(spec.arch))
    else:
        source, revision = found
        config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=spec.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    return sum(p.numel() for p in model.parameters())


def load_model(spec: ModelSpec, *, device: str, seed: int = 0, path: str | None = None):
    """Load weights (or build random ones). ``path`` overrides the source (e.g. an SFT cell's output).

    ``path`` may be a full model directory (loaded directly) or a LoRA adapter directory (e.g. an
    sft_lora cell's ``model/``): then the preset's base model is loaded and the adapter merged into
    it, so the result is a plain model that DPO (full, or with a fresh LoRA) starts from. This is
    what ``method.init_from`` needs: ``load_model(spec.model, device=..., seed=..., path=spec.method.init_from)``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if path is not None:
        path = str(Path(os.path.expanduser(str(path))).resolve())
        if is_adapter_dir(path):
            return _load_merged_adapter(spec, device=device, seed=seed, adapter=path)
    dtype = torch_dtype(spec.dtype, device)
    found = _weights_source(spec, path, seed)
    if found is None:
        config = AutoConfig.for_model(spec.arch["model_type"], **_config_args(spec.arch))
        torch.manual_seed(seed)
        # Initialise on the GPU when there is one (seconds, not minutes, for billions of weights);
        # under ZeRO-3 zero.Init places the shards itself.
        from transformers.integrations import is_deepspeed_zero3_enabled

        target = "cuda" if device == "cuda" and not is_deepspeed_zero3_enabled() else "cpu"
        with torch.device(target):
            return AutoModelForCausalLM.from_config(config, dtype=dtype)
    source, revision = found
    return AutoModelForCausalLM.from_pretrained(
        source,
        revision=revision,
        dtype=dtype,
        trust_remote_code=spec.trust_remote_code,
    )


def _load_merged_adapter(spec: ModelSpec, *, device: str, seed: int, adapter: str):
    """The preset's base model with the LoRA adapter at ``adapter`` merged in."""
    from peft import PeftModel

    saved = adapter_base(adapter)  # random base weights saved with the adapter, if any
    base = load_model(spec, device=device, seed=seed, path=saved)
    try:
        recorded = (
            None
            if saved
            else json.loads((Path(adapter) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        )
    except (OSError, ValueError):
        recorded = None
    actual = getattr(base.config, "_name_or_path", None)
    if recorded and actual and Path(str(recorded)).name != Path(str(actual)).name:
        print(
            f"[jsweep] warning: adapter {adapter} was trained on {recorded}, merging into {actual} "
            f"(model={spec.name}); check that they are the same base model",
            file=sys.stderr,
            flush=True,
        )
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.requires_grad_(True)  # PEFT froze the base weights while attaching; the merged model trains
    model.config._name_or_path = adapter
    return model


def load_for_eval(path: str, spec, device: str):
    """(model, tokenizer) to evaluate, on ``device``: a full model dir, a PEFT adapter dir (its base loaded from
    the adapter config, or the random base saved with it), or a hub id. ``spec``: the cell (dtype, remote code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch_dtype(spec.model.dtype, device)
    p = Path(path)
    model: Any  # a transformers model, or a PeftModel around one
    if (p / "adapter_config.json").exists():
        from peft import PeftModel

        base = adapter_base(p) or json.loads((p / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_model = AutoModelForCausalLM.from_pretrained(
            base, dtype=dtype, trust_remote_code=spec.model.trust_remote_code
        )
        model = PeftModel.from_pretrained(base_model, str(p))
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=spec.model.trust_remote_code)
    tok_src = str(p) if (p / "tokenizer_config.json").exists() else path
    tokenizer = AutoTokenizer.from_pretrained(tok_src, trust_remote_code=spec.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer
