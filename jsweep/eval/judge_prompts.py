"""Judging prompts and the parsing of their replies.

``elyza`` is ELYZA's published grading prompt for ELYZA-tasks-100 (the ELYZA-japanese-Llama-2
evaluation write-up, used unchanged by the community's GPT-4 scripts): the judge sees the task,
the reference answer (正解例), the general criteria (1: wrong / does not follow the instruction ...
5: helpful; -1 for unnatural Japanese or partly false statements; 2 for an over-cautious refusal)
and the task's own ``eval_aspect``, and replies with a number only. Its "reason" column is then
whatever the judge wrote besides the number (usually nothing).

``elyza_reason`` is the same criteria, asking for a short reason first and the score on a last
line ``点数: N``; scores are not comparable one-to-one with the number-only protocol, so it is a
separate prompt (with its own digest, logged with every score).

``pairwise`` compares two answers to the same task (with its reference answer and
``eval_aspect``): the verdict is ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie). Every pair is asked
in both orders (jsweep.eval.pairwise).

A template's digest (sha256 of its text, 16 hex digits) is logged with every score it produced.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass


def digest(obj: object) -> str:
    """A short, stable digest of a prompt or a judge identity (sha256 of its text or sorted JSON, 16 hex)."""
    blob = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


_CRITERIA = """# 採点基準
基本的な採点基準
- 1点: 誤っている、 指示に従えていない
- 2点: 誤っているが、方向性は合っている
- 3点: 部分的に誤っている、 部分的に合っている
- 4点: 合っている
- 5点: 役に立つ

基本的な減点項目
- 不自然な日本語: -1点
- 部分的に事実と異なる内容を述べている: -1点
- 「倫理的に答えられません」のように過度に安全性を気にしてしまっている: 2点にする

問題固有の採点基準
{eval_aspect}"""

ELYZA = (
    """あなたは採点者です。

問題, 正解例, 採点基準, 回答 が与えられます。

採点基準と正解例を参考にして、回答を1,2,3,4,5の5段階で採点し、数字のみを出力してください。

# 問題
{input}

# 正解例
{output}

"""
    + _CRITERIA
    + """

# 回答
{answer}
"""
)

ELYZA_REASON = (
    """あなたは採点者です。

問題, 正解例, 採点基準, 回答 が与えられます。

採点基準と正解例を参考にして、回答を1,2,3,4,5の5段階で採点してください。まず採点の理由を簡潔に述べ、最後の行に「点数: N」(Nは1から5の整数)の形式で点数を出力してください。

# 問題
{input}

# 正解例
{output}

"""
    + _CRITERIA
    + """

# 回答
{answer}
"""
)

PAIRWISE = (
    """あなたは公平な採点者です。

問題, 正解例, 採点基準 と、二つのAIアシスタントの回答 A と B が与えられます。

採点基準と正解例を参考にして、どちらの回答が問題によりよく答えているかを判定してください。回答の順番や長さ、アシスタントの名前に判定を左右されてはいけません。まず簡潔に理由を述べ、最後の行に、A がよければ「[[A]]」、B がよければ「[[B]]」、同程度であれば「[[C]]」とだけ出力してください。

# 問題
{input}

# 正解例
{output}

"""
    + _CRITERIA
    + """

# 回答 A
{answer_a}

# 回答 B
{answer_b}
"""
)


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    kind: str  # absolute | pairwise

    @property
    def digest(self) -> str:
        return digest(self.text)

    def render(self, **fields: str) -> str:
        # str.format would choke on braces inside the task text: fill the named slots one by one.
        out = self.text
        for key in re.findall(r"\{(\w+)\}", self.text):
            out = out.replace("{" + key + "}", fields.get(key, "") or "")
        return out


PROMPTS: dict[str, Template] = {
    "elyza": Template("elyza", ELYZA, "absolute"),
    "elyza_reason": Template("elyza_reason", ELYZA_REASON, "absolute"),
}
PAIRWISE_PROMPTS: dict[str, Template] = {"pairwise": Template("pairwise", PAIRWISE, "pairwise")}

_ONLY = re.compile(r"^\s*[\[(「【]?\s*([1-5])(?:\.0+)?\s*(?:点)?\s*[\])」】]?\s*[。.]?\s*$")
_LABELLED = re.compile(r"(?:点数|スコア|評価|score)\s*[\"']?\s*[:：=]\s*[\"']?\s*([1-5])(?!\d)", re.I)
_TAG = re.compile(r"<score>\s*([1-5])(?:\.0+)?\s*</score>", re.I)
_LEADING = re.compile(r"^\s*([1-5])(?:\s*点)?(?=\s*(?:\n|$|[。、,.:：]))")
_OUT_OF_5 = re.compile(r"^\s*([1-5])\s*/\s*5\s*(?:点)?\s*$")
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_score(reply: str | None) -> tuple[int | None, str]:
    """(score 1-5 or None when unparseable, the judge's reason: its reply without the score)."""
    if reply is None:
        return None, ""
    text = unicodedata.normalize("NFKC", reply).strip()  # full-width ４ / ：, as Japanese judges often write
    m = _ONLY.match(text) or _OUT_OF_5.match(text)
    if m:
        return int(m.group(1)), ""
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            s = obj.get("score") if isinstance(obj, dict) else None
            if isinstance(s, (int, float)) and int(s) == s and 1 <= s <= 5:
                return int(s), str(obj.get("reason", "") or "")
        except json.JSONDecodeError:
            pass
    for pattern in (_TAG, _LABELLED):
        found = list(pattern.finditer(text))
        if found:
            last = found[-1]
            return int(last.group(1)), (text[: last.start()] + text[last.end() :]).strip()
    m = _LEADING.match(text)
    if m:
        return int(m.group(1)), text[m.end() :].strip(" \n。、,.:：")
    return None, text


def parse_verdict(reply: str | None) -> str | None:
    """``A``, ``B``, ``C`` (tie), or None when the reply has no verdict (the last one counts)."""
    if reply is None:
        return None
    reply = unicodedata.normalize("NFKC", reply)
    found = _VERDICT.findall(reply)
    if found:
        return found[-1]
    bare = re.fullmatch(r"\s*\[{0,2}\s*([ABC])\s*\]{0,2}\s*[。.]?\s*", reply)  # a judge that replies just "A"
    return bare.group(1) if bare else None
