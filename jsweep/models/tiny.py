"""The builtin tiny model: a small Llama-architecture LM with a Japanese BPE tokenizer.

Built locally from the shipped fixtures (no download): the tokenizer is trained on every fixture
text; with ``arch.pretrain_steps > 0`` the model is then pretrained (plain next-token loss) on the
instruction fixtures' texts, never on the evaluation fixtures (``fixtures/eval/``), so that tuning
it on one dataset or another, at one lr or another, changes what it scores. Cached under
``$JSWEEP_CACHE/models`` (default ``~/.cache/jsweep/models``), keyed by a digest of the
architecture, the tokenizer corpus and the seed, so the first cell builds it and every later
cell (and every later sweep) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsweep.data.sources import FIXTURES

SPECIAL = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}

# Chat template for the tiny model: alpaca-ja style turns. {% generation %} marks assistant text so
# TRL's assistant_only_loss works with it.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### 指示:\n{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'assistant' %}### 応答:\n{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}\n\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}### 応答:\n{% endif %}"
)


def cache_root() -> Path:
    return Path(os.environ.get("JSWEEP_CACHE") or Path.home() / ".cache" / "jsweep") / "models"


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        if obj.strip():
            yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def corpus() -> list[str]:
    """Every text of the shipped fixtures, in a fixed order: the tokenizer's training corpus."""
    texts: list[str] = []
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix not in (".json", ".jsonl"):
            continue
        raw = path.read_text(encoding="utf-8")
        try:
            texts.extend(_strings(json.loads(raw)))
        except json.JSONDecodeError:
            for line in raw.splitlines():
                if line.strip():
                    texts.extend(_strings(json.loads(line)))
    return texts


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    bos = tok.token_to_id(SPECIAL["bos"])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL['bos']} $A", pair=f"{SPECIAL['bos']} $A $B", special_tokens=[(SPECIAL["bos"], bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def pretraining_corpus() -> list[str]:
    """The instruction fixtures' texts (no evaluation fixture): what ``pretrain_steps`` trains on."""
    texts: list[str] = []
    for path in sorted((FIXTURES / "instruct").rglob("*")):
        if path.suffix not in (".json", ".jsonl"):
            continue
        raw = path.read_text(encoding="utf-8")
        try:
            texts.extend(_strings(json.loads(raw)))
        except json.JSONDecodeError:
            for line in raw.splitlines():
                if line.strip():
                    texts.extend(_strings(json.loads(line)))
    return [t for t in dict.fromkeys(texts) if not t.isascii() or len(t) > 40]


def pretrain(
    model: Any, tokenizer: Any, steps: int, seed: int, block: int = 128, batch: int = 8, lr: float = 3e-3
) -> float:
    """Next-token pretraining on :func:`pretraining_corpus`, packed into ``block``-token rows; returns
    the last loss. Deterministic for a seed (CPU, fp32)."""
    import random

    import torch

    stream: list[int] = []
    for text in pretraining_corpus():
        stream += [*tokenizer(text).input_ids, tokenizer.eos_token_id]
    rows = [stream[i : i + block] for i in range(0, len(stream) - block, block)]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    loss = float("nan")
    for _ in range(steps):
        ids = torch.tensor([rows[rng.randrange(len(rows))] for _ in range(batch)])
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        loss = float(out.loss.detach())
    model.eval()
    return loss


def tiny_key(arch: dict[str, Any], seed: int) -> str:
    h = hashlib.sha256(json.dumps({"arch": arch, "seed": seed, "v": 1}, sort_keys=True).encode())
    if arch.get("pretrain_steps"):
        for text in pretraining_corpus():
            h.update(text.encode())
    for text in corpus():
        h.update(text.encode())
    return h.hexdigest()[:12]


def build_tiny(arch: dict[str, Any], seed: int = 0) -> Path:
    """Return the directory of the tiny model, building and caching it on first use. A pretrained
    tiny model is one base model (seed 0): a cell's training seed does not rebuild it."""
    if arch.get("pretrain_steps"):
        seed = 0
    target = cache_root() / f"tiny-{tiny_key(arch, seed)}"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = build_tokenizer(int(arch.get("vocab_size", 2048)))
    cfg_args = {k: v for k, v in arch.items() if k not in ("model_type", "pretrain_steps")}
    cfg_args["vocab_size"] = len(tokenizer)
    config = AutoConfig.for_model(
        arch.get("model_type", "llama"),
        **cfg_args,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    steps = int(arch.get("pretrain_steps") or 0)
    if steps > 0:
        loss = pretrain(model, tokenizer, steps, seed)
        (Path(tempfile.gettempdir()) / "jsweep-tiny-pretrain.log").write_text(f"{steps} steps, last loss {loss:.4f}\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a concurrent cell either sees nothing or a complete model
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another cell finished first; use its copy
    return target
