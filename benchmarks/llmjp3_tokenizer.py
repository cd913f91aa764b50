"""Builds a fast tokenizer with llm-jp-3's vocabulary, for throughput runs on machines without the hub.

llm-jp-3's models use llm-jp-tokenizer v3 (a SentencePiece unigram model with byte fallback, 99,574
pieces; the models' embedding has 99,584 rows). Its HF ``tokenizer.json`` is a large file that is not
always at hand, but the SentencePiece model is small and public (github.com/llm-jp/llm-jp-tokenizer,
``models/ver3.0/llm-jp-tokenizer-100k.ver3.0b1.model``). This converts that model with transformers'
own Llama converter (legacy=False with the dummy prefix, as SentencePiece encodes), adds the BOS that
llm-jp's tokenizer config adds (``add_bos_token: true``) and its special tokens, checks the ids against
SentencePiece on the given texts, and saves ``tokenizer.json`` + ``tokenizer_config.json``.

Random-weight presets load it with ``model.source=<out dir>`` (``model.init=random`` builds the weights
from ``model.arch``), so prompts have the token lengths a real llm-jp-3 cell sees (about 2.2 characters
a token on the JGLUE dev files, against about 1 for the builtin 2,048-token tokenizer).

Needs ``sentencepiece`` and ``protobuf`` (not project dependencies: only this build uses them):

    pip install --target /tmp/sp sentencepiece protobuf
    PYTHONPATH=/tmp/sp python benchmarks/llmjp3_tokenizer.py SP_MODEL OUT_DIR --check ../shared/data/jglue-v1.3
"""

from __future__ import annotations

import argparse
import types
from pathlib import Path


def build(sp_model: Path):
    import sentencepiece as spm
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import LlamaConverter

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    # the converter reads a slow tokenizer's attributes; SentencePiece itself answers the one call it makes
    original = types.SimpleNamespace(
        vocab_file=str(sp_model),
        legacy=False,
        add_prefix_space=True,
        add_bos_token=True,
        add_eos_token=False,
        handle_byte_fallback=True,
        convert_ids_to_tokens=sp.id_to_piece,
    )
    tok: Tokenizer = LlamaConverter(original).converted()
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<PAD|LLM-jp>",
        cls_token="<CLS|LLM-jp>",
        sep_token="<SEP|LLM-jp>",
        mask_token="<MASK|LLM-jp>",
        model_max_length=4096,
    )
    return fast, sp


def check(fast, sp, jglue: Path, chunk: int = 700) -> dict:
    """Ids against SentencePiece on ``chunk``-character pieces of every JGLUE dev file."""
    same = n = chars = tokens = 0
    for f in sorted(jglue.glob("*/valid-v1.3.json")):
        text = f.read_text(encoding="utf-8")[:400_000]
        for i in range(0, len(text), chunk):
            piece = text[i : i + chunk]
            ours, theirs = fast(piece, add_special_tokens=False)["input_ids"], sp.encode(piece)
            same += ours == theirs
            n += 1
            chars += len(piece)
            tokens += len(theirs)
    return {"pieces": n, "identical_ids": same, "characters_per_token": round(chars / tokens, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sp_model", type=Path, help="llm-jp-tokenizer-100k.ver3.0b1.model")
    ap.add_argument("out", type=Path, help="output directory")
    ap.add_argument("--check", type=Path, help="JGLUE v1.3 directory: compare ids with SentencePiece")
    args = ap.parse_args()
    fast, sp = build(args.sp_model)
    if args.check:
        print(check(fast, sp, args.check))
    fast.save_pretrained(str(args.out))
    print(f"wrote {args.out} ({len(fast)} tokens, BOS {fast.bos_token_id}, pad {fast.pad_token_id})")


if __name__ == "__main__":
    main()
