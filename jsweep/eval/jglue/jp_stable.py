"""JP-Stable prompt versions 0.2 and 0.3 of JCommonsenseQA, JNLI, JSQuAD and MARC-ja as harness task configs.

Source: Stability-AI/lm-evaluation-harness, branch ``jp-stable`` (the harness behind the
Japanese tables of Stability AI, rinna, Stockmark and others), files

- ``lm_eval/tasks/ja/jcommonsenseqa.py``: ``JCommonsenseQAWithFintanPrompt`` (0.2),
  ``JCommonsenseQAWithJAAlpacaPrompt`` (0.3), task version 1.1;
- ``lm_eval/tasks/ja/jnli.py``: ``JNLIWithFintanPrompt`` (0.2), ``JNLIWithJAAlpacaPrompt`` (0.3);
- ``lm_eval/tasks/ja/jsquad.py``: ``JSQuADWithFintanPrompt`` (0.2), ``JSQuADWithJAAlpacaPrompt`` (0.3), 1.1;
- ``lm_eval/tasks/ja/marc_ja.py``: ``MARCJaWithFintanPrompt`` (0.2), ``MARCJaWithJAAlpacaPrompt`` (0.3), 1.1;
- ``lm_eval/base.py``: ``Task.fewshot_context`` (how the pieces join).

JP-Stable builds a prompt as ``DESCRIPTION + SEP2.join(doc_to_text(ex) + doc_to_target(ex) for ex
in shots) + SEP2 + doc_to_text(doc)`` where ``SEP2`` is ``FEWSHOT_SEP``, else ``SEP * 2``, else
``"\\n\\n"``; multiple-choice continuations are the bare choice strings (``"{}".format(choice)``, no
leading space) and JSQuAD generates greedily until ``SEP``. In the current harness that is
``description`` = DESCRIPTION, ``target_delimiter`` = "" and ``fewshot_delimiter`` = SEP2, which is
what every config below sets. ``doc_to_text`` templates are Jinja transcriptions of the
``doc_to_text`` f-strings over the hub dataset's columns (JP-Stable's ``_process_doc`` renames:
goal = question, premise = sentence1, hypothesis = sentence2, query = sentence, gold = label).
The 0.3 (JA-Alpaca) strings of JSQuAD and MARC-ja are the later ones of the branch (no stray
trailing blank lines in DESCRIPTION / INSTRUCTION), as in the prompts the harness's
``japanese_leaderboard`` credits to this branch.
"""

from __future__ import annotations

import copy
from typing import Any

VERSIONS = ("0.2", "0.3")
TASK_VERSION = 1.1  # JP-Stable task VERSION of these classes (task names jcommonsenseqa-1.1-0.3, ...)

# JNLI's task VERSION sets its labels. 1.1: English labels; every published JP-Stable table
# (rinna, Stability AI, Stockmark, 2023) was made with it. 1.2 (commit f9e1d75, Oct 2023, "Use
# Japanese prompt instead of English for JNLI"): the same prompts with the labels 含意/矛盾/中立.
# 1.3 (the branch head): 1.2 with class-stratified few-shot draws, which the installed harness's
# sampler does not do (docs/jglue.md). 1.1 is the default.
JNLI_VERSIONS = ("1.1", "1.2", "1.3")
JNLI_LABELS = {
    "1.1": ["entailment", "contradiction", "neutral"],
    "1.2": ["含意", "矛盾", "中立"],
    "1.3": ["含意", "矛盾", "中立"],
}

# JA-Alpaca header of all 0.3 prompts (fujiki/japanese_alpaca_data; Stability-AI/gpt-neox finetune_base_ja.py).
ALPACA_DESCRIPTION = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
)

# JSQuAD's context is "<title> [SEP] <text>"; both versions keep only the text: context.split('[SEP]')[-1].strip().
_JSQUAD_CONTEXT = "{{ context.split('[SEP]')[-1].strip() }}"


def add_choices(dataset):
    """process_docs of JCommonsenseQA: ``choices`` = [choice0..choice4] (JP-Stable ``_process_doc``)."""
    return dataset.map(_with_choices)


def _with_choices(doc: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [doc[f"choice{i}"] for i in range(5)]}


def label_as_text(doc: dict[str, Any]) -> str:
    """JCommonsenseQA 0.2's few-shot answer: the choice *number* (``doc_to_target`` returns f"{gold}")."""
    return str(doc["label"])


def _mc(description: str, doc_to_text: str, choices: Any, sep2: str, **extra: Any) -> dict[str, Any]:
    return {
        "output_type": "multiple_choice",
        "description": description,
        "doc_to_text": doc_to_text,
        "doc_to_target": "label",
        "doc_to_choice": choices,
        "target_delimiter": "",
        "fewshot_delimiter": sep2,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        **extra,
    }


def _jsquad(description: str, doc_to_text: str) -> dict[str, Any]:
    # JSQuAD: SEP = "\n" -> few-shot separator "\n\n", greedy until SEP; target = answers.text[0].
    return {
        "output_type": "generate_until",
        "description": description,
        "doc_to_text": doc_to_text,
        "doc_to_target": "{{ answers.text[0] }}",
        "target_delimiter": "",
        "fewshot_delimiter": "\n\n",
        "generation_kwargs": {"until": ["\n"], "do_sample": False},
    }


CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    # --- JCommonsenseQA -------------------------------------------------------------------------
    # 0.2 JCommonsenseQAWithFintanPrompt (https://fintan.jp/page/9126/). No SEP -> "\n\n".
    # Few-shot answers are the choice number (doc_to_target f"{gold}") while scoring compares the
    # choice *texts* (construct_requests of JCommonsenseQA); JP-Stable itself warns that 0.2 scores low.
    ("jcommonsenseqa", "0.2"): _mc(
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号(例:0)でするものとします。 \n\n",
        "質問:{{ question }}\n選択肢:{% for c in choices %}{{ loop.index0 }}.{{ c }}{% if not loop.last %},{% endif %}"
        "{% endfor %}\n回答:",
        "choices",
        "\n\n",
        process_docs=add_choices,
        fewshot_config={"doc_to_target": label_as_text},
    ),
    # 0.3 JCommonsenseQAWithJAAlpacaPrompt: INSTRUCTION + "出力は以下から選択してください：\n" + "- c" lines.
    ("jcommonsenseqa", "0.3"): _mc(
        ALPACA_DESCRIPTION,
        "### 指示:\n与えられた選択肢の中から、最適な答えを選んでください。出力は以下から選択してください：\n"
        "{% for c in choices %}- {{ c }}\n{% endfor %}\n### 入力:\n{{ question }}\n\n### 応答:\n",
        "choices",
        "\n\n",
        process_docs=add_choices,
    ),
    # --- JNLI (SEP = "\n") ----------------------------------------------------------------------
    # 0.2 JNLIWithFintanPrompt.
    ("jnli", "0.2"): _mc(
        "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。\n\n"
        "制約:\n"
        "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
        "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
        "- そのいずれでもない場合はneutralと出力\n\n",
        "前提:{{ sentence1 }}\n仮説:{{ sentence2 }}\n関係:",
        ["entailment", "contradiction", "neutral"],
        "\n\n",
    ),
    # 0.3 JNLIWithJAAlpacaPrompt.
    ("jnli", "0.3"): _mc(
        ALPACA_DESCRIPTION,
        "### 指示:\n与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください：\n"
        "entailment\ncontradiction\nneutral\n\n### 入力:\n前提：{{ sentence1 }}\n仮説：{{ sentence2 }}\n\n### 応答:\n",
        ["entailment", "contradiction", "neutral"],
        "\n\n",
    ),
    # --- JSQuAD (SEP = "\n") --------------------------------------------------------------------
    # 0.2 JSQuADWithFintanPrompt.
    ("jsquad", "0.2"): _jsquad(
        "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
        "文章:" + _JSQUAD_CONTEXT + "\n質問:{{ question }}\n回答:",
    ),
    # 0.3 JSQuADWithJAAlpacaPrompt.
    ("jsquad", "0.3"): _jsquad(
        ALPACA_DESCRIPTION,
        "### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n### 入力:\n文脈："
        + _JSQUAD_CONTEXT
        + "\n質問：{{ question }}\n\n### 応答:\n",
    ),
    # --- MARC-ja (SEP = "\n") -------------------------------------------------------------------
    # 0.2 MARCJaWithFintanPrompt.
    ("marc_ja", "0.2"): _mc(
        "製品レビューをnegativeかpositiveのいずれかのセンチメントに分類してください。出力は小文字化してください。 \n\n",
        "製品レビュー:{{ sentence }}\nセンチメント:",
        ["positive", "negative"],
        "\n\n",
    ),
    # 0.3 MARCJaWithJAAlpacaPrompt.
    ("marc_ja", "0.3"): _mc(
        ALPACA_DESCRIPTION,
        "### 指示:\n以下の製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。\n\n"
        "### 入力:\n{{ sentence }}\n\n### 応答:\n",
        ["ポジティブ", "ネガティブ"],
        "\n\n",
    ),
}

SOURCE = {
    "jcommonsenseqa": "Stability-AI/lm-evaluation-harness@jp-stable lm_eval/tasks/ja/jcommonsenseqa.py",
    "jnli": "Stability-AI/lm-evaluation-harness@jp-stable lm_eval/tasks/ja/jnli.py",
    "jsquad": "Stability-AI/lm-evaluation-harness@jp-stable lm_eval/tasks/ja/jsquad.py",
    "marc_ja": "Stability-AI/lm-evaluation-harness@jp-stable lm_eval/tasks/ja/marc_ja.py",
}
CLASS = {
    ("jcommonsenseqa", "0.2"): "JCommonsenseQAWithFintanPrompt",
    ("jcommonsenseqa", "0.3"): "JCommonsenseQAWithJAAlpacaPrompt",
    ("jnli", "0.2"): "JNLIWithFintanPrompt",
    ("jnli", "0.3"): "JNLIWithJAAlpacaPrompt",
    ("jsquad", "0.2"): "JSQuADWithFintanPrompt",
    ("jsquad", "0.3"): "JSQuADWithJAAlpacaPrompt",
    ("marc_ja", "0.2"): "MARCJaWithFintanPrompt",
    ("marc_ja", "0.3"): "MARCJaWithJAAlpacaPrompt",
}


def _jnli_labels(cfg: dict[str, Any], jnli_version: str) -> dict[str, Any]:
    """JNLI ``cfg`` (written with the 1.1 English labels) with the labels of ``jnli_version``."""
    if jnli_version not in JNLI_VERSIONS:
        raise ValueError(f"JNLI task version must be one of {', '.join(JNLI_VERSIONS)}, got {jnli_version!r}")
    for old, new in zip(JNLI_LABELS["1.1"], JNLI_LABELS[jnli_version]):
        for key in ("description", "doc_to_text"):
            cfg[key] = cfg[key].replace(old, new)
    cfg["doc_to_choice"] = list(JNLI_LABELS[jnli_version])
    return cfg


def config(task: str, version: str, jnli_version: str = "1.1") -> dict[str, Any]:
    """The TaskConfig fields (no data fields) of JP-Stable ``task`` at prompt ``version``.

    ``jnli_version`` picks JNLI's task version (labels), see JNLI_VERSIONS.
    """
    out = copy.deepcopy(CONFIGS[(task, version)])
    task_version: Any = TASK_VERSION
    if task == "jnli":
        out = _jnli_labels(out, jnli_version)
        task_version = float(jnli_version)
    out["metadata"] = {
        "version": task_version,
        "prompt_style": "jp_stable",
        "prompt_version": version,
        "source": f"{SOURCE[task]} {CLASS[(task, version)]}",
        "jp_stable_task": f"{task}-{task_version}-{version}",
    }
    return out
