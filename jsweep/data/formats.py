"""Prompt formats: how a conversation becomes the text a model trains on and is prompted with.

A format renders the prompt for the next assistant reply; training pairs that prompt with the
reply as the completion (EOS is appended by the trainer side). The same format object renders
evaluation prompts, so a cell can be scored in the format it was tuned in.

- ``alpaca_ja``: the Japanese Alpaca / llm-jp-eval style, with an ``### 入力:`` section when the
  example has separate input.
- ``llmjp``: llm-jp's SFT style (the llm-jp-3 instruct chat template): a fixed header, input
  folded into the instruction, ``### 指示:`` / ``### 応答:`` blocks.
- ``chat_template``: the tokenizer's own chat template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsweep.data.records import Example, Message

HEADER_WITH_INPUT = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"
)
HEADER_NO_INPUT = "以下は、タスクを説明する指示です。要求を適切に満たす応答を書きなさい。"


def _fold_input(messages: Sequence[Message], input: str) -> list[Message]:
    """Append ``input`` to the first user turn (for formats without an input section)."""
    out = [Message(m.role, m.content) for m in messages]
    if input:
        for m in out:
            if m.role == "user":
                m.content = f"{m.content}\n\n{input}"
                break
    return out


def _check_turns(messages: Sequence[Message]) -> None:
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise ValueError("a prompt must end with a user turn")


def strip_template_bos(text: str, tokenizer: Any) -> str:
    """Drop a BOS the chat template wrote when the tokenizer adds one itself (else training and
    generation would see two)."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        ids = tokenizer("x").input_ids
        if ids and ids[0] == tokenizer.bos_token_id:
            return text[len(bos) :]
    return text


@dataclass(frozen=True)
class AlpacaJa:
    name: str = "alpaca_ja"

    def prompt(
        self, messages: Sequence[Message], input: str = "", *, tokenizer: Any = None, system: str | None = None
    ) -> str:
        _check_turns(messages)
        sys_msgs = [m.content for m in messages if m.role == "system"]
        header = system or (sys_msgs[0] if sys_msgs else (HEADER_WITH_INPUT if input else HEADER_NO_INPUT))
        parts = [header]
        first_user = True
        for m in messages:
            if m.role == "user":
                parts.append(f"\n\n### 指示:\n{m.content}")
                if first_user and input:
                    parts.append(f"\n\n### 入力:\n{input}")
                first_user = False
            elif m.role == "assistant":
                parts.append(f"\n\n### 応答:\n{m.content}")
        parts.append("\n\n### 応答:\n")
        return "".join(parts)

    def render(self, ex: Example, *, tokenizer: Any = None, system: str | None = None) -> tuple[str, str]:
        return self.prompt(ex.prompt_messages, ex.input, tokenizer=tokenizer, system=system), ex.target


@dataclass(frozen=True)
class LlmJp:
    """llm-jp SFT style: the header once, then ### 指示 / ### 応答 blocks; EOS closes earlier replies."""

    name: str = "llmjp"

    def prompt(
        self, messages: Sequence[Message], input: str = "", *, tokenizer: Any = None, system: str | None = None
    ) -> str:
        _check_turns(messages)
        msgs = _fold_input(messages, input)
        sys_msgs = [m.content for m in msgs if m.role == "system"]
        eos = getattr(tokenizer, "eos_token", None) or ""
        parts = [system or (sys_msgs[0] if sys_msgs else HEADER_NO_INPUT)]
        for m in msgs:
            if m.role == "user":
                parts.append(f"\n\n### 指示:\n{m.content}")
            elif m.role == "assistant":
                parts.append(f"\n\n### 応答:\n{m.content}{eos}")
        parts.append("\n\n### 応答:\n")
        return "".join(parts)

    def render(self, ex: Example, *, tokenizer: Any = None, system: str | None = None) -> tuple[str, str]:
        return self.prompt(ex.prompt_messages, ex.input, tokenizer=tokenizer, system=system), ex.target


@dataclass(frozen=True)
class ChatTemplate:
    """The tokenizer's chat template (``apply_chat_template`` with a generation prompt)."""

    name: str = "chat_template"

    def prompt(
        self, messages: Sequence[Message], input: str = "", *, tokenizer: Any = None, system: str | None = None
    ) -> str:
        _check_turns(messages)
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt.format=chat_template needs a tokenizer with a chat template")
        msgs = _fold_input(messages, input)
        if system and not any(m.role == "system" for m in msgs):
            msgs.insert(0, Message("system", system))
        text = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in msgs], tokenize=False, add_generation_prompt=True
        )
        return strip_template_bos(text, tokenizer)

    def render(self, ex: Example, *, tokenizer: Any = None, system: str | None = None) -> tuple[str, str]:
        return self.prompt(ex.prompt_messages, ex.input, tokenizer=tokenizer, system=system), ex.target


ALPACA_JA = AlpacaJa()
LLMJP = LlmJp()
CHAT_TEMPLATE = ChatTemplate()
