"""JGLUE through lm-evaluation-harness: local-file adapters, prompts equal to the harness's, JSQuAD metrics, AVG.

Offline and CPU only. The end-to-end tests use the builtin tiny model (a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from jsweep.errors import ConfigError, DataError
from jsweep.eval.jglue import data as D
from jsweep.eval.jglue import evaluator as jglue
from jsweep.eval.jglue import metrics as M

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# --------------------------------------------------------------------------- raw JGLUE records and their hub rows
# Raw records in the layout of JGLUE v1.3's datasets/<task>-v1.3/{train,valid}-v1.3.json (JSQuAD nested,
# the others JSON lines; MARC-ja as written by preprocess/marc-ja/scripts/marc-ja.py), and the rows the
# hub dataset (shunk031/JGLUE, Rakuten/JGLUE) has for them: the harness's tasks read those rows.

JCQA_TRAIN = [
    {
        "q_id": 0,
        "question": "水を飲むときに使うものは？",
        "choice0": "コップ",
        "choice1": "靴",
        "choice2": "傘",
        "choice3": "鍵",
        "choice4": "鞄",
        "label": 0,
    },
    {
        "q_id": 1,
        "question": "雨の日にさすものは？",
        "choice0": "箸",
        "choice1": "傘",
        "choice2": "皿",
        "choice3": "机",
        "choice4": "窓",
        "label": 1,
    },
    {
        "q_id": 2,
        "question": "髪を切る店は？",
        "choice0": "八百屋",
        "choice1": "本屋",
        "choice2": "床屋",
        "choice3": "魚屋",
        "choice4": "花屋",
        "label": 2,
    },
]
JCQA_VALID = [
    {
        "q_id": 3,
        "question": "夜空に光るものは？",
        "choice0": "星",
        "choice1": "石",
        "choice2": "草",
        "choice3": "砂",
        "choice4": "泥",
        "label": 0,
    },
    {
        "q_id": 4,
        "question": "手紙を入れる箱は？",
        "choice0": "本棚",
        "choice1": "冷蔵庫",
        "choice2": "金庫",
        "choice3": "ポスト",
        "choice4": "靴箱",
        "label": 3,
    },
]
JNLI_TRAIN_RAW = [
    {
        "sentence_pair_id": "0",
        "yjcaptions_id": "1-2-3",
        "sentence1": "犬が走っています。",
        "sentence2": "動物が動いています。",
        "label": "entailment",
    },
    {
        "sentence_pair_id": "1",
        "yjcaptions_id": "4-5-6",
        "sentence1": "猫が寝ています。",
        "sentence2": "猫が走っています。",
        "label": "contradiction",
    },
    {
        "sentence_pair_id": "2",
        "yjcaptions_id": "7-8-9",
        "sentence1": "男性が立っています。",
        "sentence2": "男性は教師です。",
        "label": "neutral",
    },
]
JNLI_VALID_RAW = [
    {
        "sentence_pair_id": "0",
        "yjcaptions_id": "10-11-12",
        "sentence1": "車が停まっています。",
        "sentence2": "車があります。",
        "label": "entailment",
    },
    {
        "sentence_pair_id": "1",
        "yjcaptions_id": "13-14-15",
        "sentence1": "空が青いです。",
        "sentence2": "空は赤いです。",
        "label": "contradiction",
    },
]
MARC_TRAIN_RAW = [
    {"sentence": "とても良い商品でした。", "label": "positive", "review_id": "R1"},
    {"sentence": "すぐに壊れました。", "label": "negative", "review_id": "R2"},
    {"sentence": "また買いたいです。", "label": "positive", "review_id": "R3"},
]
MARC_VALID_RAW = [
    {"sentence": "期待外れでした。", "label": "negative", "review_id": "R4"},
    {"sentence": "満足しています。", "label": "positive", "review_id": "R5"},
]


def _squad(paragraphs):
    return {
        "version": "v1.3",
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {
                        "qas": [
                            {
                                "question": q,
                                "id": qid,
                                "answers": [{"text": t, "answer_start": s} for t, s in answers],
                                "is_impossible": False,
                            }
                            for qid, q, answers in qas
                        ],
                        "context": f"{title} [SEP] {text}",
                    }
                    for text, qas in paras
                ],
            }
            for title, paras in paragraphs
        ],
    }


JSQUAD_TRAIN_RAW = _squad(
    [
        (
            "富士山",
            [
                (
                    "富士山は日本で最も高い山である。標高は3776メートル。",
                    [
                        ("a1p0q0", "日本で最も高い山は何か。", [("富士山", 6)]),
                        ("a1p0q1", "富士山の標高は何メートルか。", [("3776メートル", 25)]),
                    ],
                )
            ],
        ),
        (
            "琵琶湖",
            [("琵琶湖は滋賀県にある日本最大の湖である。", [("a2p0q0", "琵琶湖はどの県にあるか。", [("滋賀県", 10)])])],
        ),
    ]
)
JSQUAD_VALID_RAW = _squad(
    [
        (
            "東京",
            [
                (
                    "東京は日本の首都である。人口は約1400万人。",
                    [
                        ("a3p0q0", "日本の首都はどこか。", [("東京", 5), ("東京", 5), ("東京都", 5)]),
                        ("a3p0q1", "東京の人口は約何人か。", [("1400万人", 20), ("約1400万人", 19)]),
                    ],
                )
            ],
        ),
    ]
)


def _hub_jsquad(raw):
    return [
        {
            "id": qa["id"],
            "title": art["title"],
            "context": para["context"],
            "question": qa["question"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
            "is_impossible": False,
        }
        for art in raw["data"]
        for para in art["paragraphs"]
        for qa in para["qas"]
    ]


HUB_ROWS = {  # the hub dataset's rows for the records above, written out by hand
    "jcommonsenseqa": {"train": JCQA_TRAIN, "validation": JCQA_VALID},
    "jnli": {
        "train": [{**r, "label": i} for i, r in enumerate(JNLI_TRAIN_RAW)],
        "validation": [{**JNLI_VALID_RAW[0], "label": 0}, {**JNLI_VALID_RAW[1], "label": 1}],
    },
    "marc_ja": {
        "train": [
            {"sentence": "とても良い商品でした。", "label": 0, "review_id": "R1"},
            {"sentence": "すぐに壊れました。", "label": 1, "review_id": "R2"},
            {"sentence": "また買いたいです。", "label": 0, "review_id": "R3"},
        ],
        "validation": [
            {"sentence": "期待外れでした。", "label": 1, "review_id": "R4"},
            {"sentence": "満足しています。", "label": 0, "review_id": "R5"},
        ],
    },
    "jsquad": {
        "train": [
            {
                "id": "a1p0q0",
                "title": "富士山",
                "context": "富士山 [SEP] 富士山は日本で最も高い山である。標高は3776メートル。",
                "question": "日本で最も高い山は何か。",
                "answers": {"text": ["富士山"], "answer_start": [6]},
                "is_impossible": False,
            },
            {
                "id": "a1p0q1",
                "title": "富士山",
                "context": "富士山 [SEP] 富士山は日本で最も高い山である。標高は3776メートル。",
                "question": "富士山の標高は何メートルか。",
                "answers": {"text": ["3776メートル"], "answer_start": [25]},
                "is_impossible": False,
            },
            {
                "id": "a2p0q0",
                "title": "琵琶湖",
                "context": "琵琶湖 [SEP] 琵琶湖は滋賀県にある日本最大の湖である。",
                "question": "琵琶湖はどの県にあるか。",
                "answers": {"text": ["滋賀県"], "answer_start": [10]},
                "is_impossible": False,
            },
        ],
        "validation": _hub_jsquad(JSQUAD_VALID_RAW),
    },
}


def _write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_raw_jglue(root: Path, *, train: bool = True) -> Path:
    """A data_dir in JGLUE's own layout: datasets/<task>-v1.3/{train,valid}-v1.3.json (MARC-ja: marc_ja/{train,valid}.json)."""
    for task, tr, va in (("jcommonsenseqa", JCQA_TRAIN, JCQA_VALID), ("jnli", JNLI_TRAIN_RAW, JNLI_VALID_RAW)):
        _write_jsonl(root / f"{task}-v1.3" / "valid-v1.3.json", va)
        if train:
            _write_jsonl(root / f"{task}-v1.3" / "train-v1.3.json", tr)
    (root / "jsquad-v1.3").mkdir(parents=True, exist_ok=True)
    (root / "jsquad-v1.3" / "valid-v1.3.json").write_text(json.dumps(JSQUAD_VALID_RAW, ensure_ascii=False), "utf-8")
    if train:
        (root / "jsquad-v1.3" / "train-v1.3.json").write_text(json.dumps(JSQUAD_TRAIN_RAW, ensure_ascii=False), "utf-8")
    _write_jsonl(root / "marc_ja" / "valid.json", MARC_VALID_RAW)
    if train:
        _write_jsonl(root / "marc_ja" / "train.json", MARC_TRAIN_RAW)
    return root


# --------------------------------------------------------------------------- adapters against the real formats


@pytest.mark.parametrize("task", D.TASKS)
def test_raw_jglue_files_become_the_hub_rows(tmp_path, task):
    root = write_raw_jglue(tmp_path)
    files = D.find_task_files(task, root)
    assert files.valid.name in ("valid-v1.3.json", "valid.json") and files.train is not None
    assert D.load_task_rows(files) == HUB_ROWS[task]


def test_shipped_fixtures_read_in_the_raw_formats():
    rows = {t: D.load_task_rows(D.find_task_files(t)) for t in D.TASKS}
    assert {t: (len(r["train"]), len(r["validation"])) for t, r in rows.items()} == {
        "jcommonsenseqa": (12, 16),
        "jnli": (12, 16),
        "jsquad": (4, 14),
        "marc_ja": (10, 16),
    }
    first = rows["jsquad"]["validation"][0]
    assert (
        first["id"] == "a9101p0q0" and first["title"] == "ミツバチ" and first["context"].startswith("ミツバチ [SEP] ")
    )
    assert first["answers"] == {"text": ["女王蜂"] * 3, "answer_start": [43] * 3}
    # answer_start indexes the context (title and " [SEP] " included), as in JGLUE
    for row in rows["jsquad"]["validation"] + rows["jsquad"]["train"]:
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start : start + len(text)] == text, row["id"]
    assert rows["jnli"]["train"][0]["label"] == 0 and {r["label"] for r in rows["jnli"]["validation"]} == {0, 1, 2}
    assert rows["marc_ja"]["train"][:2] == [
        {
            "sentence": "思っていたよりも小さかったですが、作りがしっかりしていて気に入りました。",
            "label": 0,
            "review_id": "RVQJXXVBOTHD0W",
        },
        {
            "sentence": "届いて数日で電源が入らなくなりました。返品しようと思います。",
            "label": 1,
            "review_id": "RTFLHBMUAPTT0Z",
        },
    ]
    assert rows["jcommonsenseqa"]["validation"][0]["label"] == 2


def test_hub_schema_files_and_save_to_disk_copies_read_the_same(tmp_path):
    import datasets

    for task in D.TASKS:  # hub-schema JSON lines (int labels, flattened JSQuAD) as per-task paths
        valid = _write_jsonl(tmp_path / "hub" / task / "validation.jsonl", HUB_ROWS[task]["validation"])
        train = _write_jsonl(tmp_path / "hub" / task / "train.jsonl", HUB_ROWS[task]["train"])
        files = D.find_task_files(task, None, {"valid": str(valid), "train": str(train)})
        assert D.load_task_rows(files) == HUB_ROWS[task]
        assert D.find_task_files(task, None, str(tmp_path / "hub" / task)).valid == valid  # a directory override
    disk = tmp_path / "disk" / "jnli"
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in HUB_ROWS["jnli"].items()}).save_to_disk(
        str(disk)
    )
    files = D.find_task_files("jnli", tmp_path / "disk")
    assert files.disk == disk and D.load_task_rows(files) == HUB_ROWS["jnli"]


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError) as e:
        D.find_task_files("jnli", tmp_path)
    assert str(tmp_path / "jnli" / "valid-v1.3.json") in str(e.value) and "paths.jnli" in str(e.value)
    with pytest.raises(DataError, match="MARC-ja is not distributed with JGLUE"):
        D.find_task_files("marc_ja", tmp_path)
    with pytest.raises(DataError, match="set by paths.jsquad.train"):
        D.find_task_files(
            "jsquad",
            None,
            {"valid": str(D.FIXTURE_DIR / "jsquad" / "valid-v1.3.json"), "train": str(tmp_path / "nope.json")},
        )
    bad = _write_jsonl(
        tmp_path / "jnli" / "valid-v1.3.json", [JNLI_VALID_RAW[0], {**JNLI_VALID_RAW[1], "label": "maybe"}]
    )
    with pytest.raises(DataError) as e:
        D.read_split("jnli", bad)
    assert str(e.value).startswith(f"{bad}: record line 2: field 'label': label 'maybe' is not one of entailment")
    broken = json.loads(json.dumps(JSQUAD_VALID_RAW))
    del broken["data"][0]["paragraphs"][0]["qas"][1]["question"]
    path = tmp_path / "jsquad" / "valid-v1.3.json"
    path.parent.mkdir()
    path.write_text(json.dumps(broken, ensure_ascii=False), "utf-8")
    with pytest.raises(
        DataError, match=r"record data\[0\]\.paragraphs\[0\]\.qas\[1\]: field 'question': missing field"
    ):
        D.read_split("jsquad", path)


def test_file_discovery_layouts_and_versions(tmp_path):
    _write_jsonl(tmp_path / "jnli-v1.1" / "valid-v1.1.json", JNLI_VALID_RAW)
    _write_jsonl(tmp_path / "jnli-v1.3" / "valid-v1.1.json", JNLI_VALID_RAW)
    _write_jsonl(tmp_path / "jnli-v1.3" / "valid-v1.3.json", JNLI_VALID_RAW)
    files = D.find_task_files("jnli", tmp_path)
    assert files.valid == tmp_path / "jnli-v1.3" / "valid-v1.3.json" and files.train is None
    # the real dev layout in /work/shared: <task>/valid-v1.3.json without train
    _write_jsonl(tmp_path / "x" / "jnli" / "valid-v1.3.json", JNLI_VALID_RAW)
    assert D.find_task_files("jnli", tmp_path / "x").valid == tmp_path / "x" / "jnli" / "valid-v1.3.json"


# --------------------------------------------------------------------------- prompts: jsweep vs the harness


def _harness_task(cfg: dict, splits: dict, name: str, k: int):
    """A task the way the harness builds one from a config: ConfigurableTask over an in-memory DatasetDict."""
    import datasets
    from lm_eval.api.task import ConfigurableTask

    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in splits.items()})
    task = ConfigurableTask(
        config={
            **cfg,
            "task": name,
            "custom_dataset": lambda **_: dd,
            "num_fewshot": k,
            "training_split": "train",
            "validation_split": "validation",
            "test_split": None,
            "fewshot_split": "train",
            "dataset_path": None,
            "dataset_name": None,
        }
    )
    task.set_fewshot_seed(1234)
    return task


def _jsweep_tasks(root: Path, options: dict) -> dict:
    tasks, names, _, _ = jglue.JGlueEval({"data_dir": str(root), "tasks": list(D.TASKS), **options}).build_tasks(
        _tokenizer()
    )
    return {names[n]: t for n, t in tasks.items()}


_TOK = {}


def _tokenizer():
    if "tok" not in _TOK:
        from transformers import AutoTokenizer

        from jsweep.models.tiny import build_tiny
        from tests.support.models import TINY_ARCH

        _TOK["tok"] = AutoTokenizer.from_pretrained(str(build_tiny(TINY_ARCH)))
    return _TOK["tok"]


@pytest.mark.parametrize("task", D.TASKS)
def test_leaderboard_prompts_equal_the_harness_rendering_of_its_own_task_yaml(tmp_path, task):
    from jsweep.eval.jglue.harness import leaderboard_yaml, load_task_yaml

    k = jglue.DEFAULT_FEWSHOT[task]
    own = load_task_yaml(leaderboard_yaml(task))  # the harness's ja_leaderboard_<task>.yaml, unmodified
    theirs = _harness_task(own, HUB_ROWS[task], f"ja_leaderboard_{task}", k)
    ours = _jsweep_tasks(write_raw_jglue(tmp_path), {"prompt_style": "leaderboard", "num_fewshot": k})[task]
    assert len(ours.eval_docs) == len(theirs.eval_docs) == 2
    for doc_ours, doc_theirs in zip(ours.eval_docs, theirs.eval_docs):
        for shots in (0, k):
            assert ours.fewshot_context(doc_ours, shots) == theirs.fewshot_context(doc_theirs, shots)
        req_ours = ours.construct_requests(doc_ours, "CTX", metadata=("t", 0, 1))
        req_theirs = theirs.construct_requests(doc_theirs, "CTX", metadata=("t", 0, 1))
        req_ours = req_ours if isinstance(req_ours, list) else [req_ours]
        req_theirs = req_theirs if isinstance(req_theirs, list) else [req_theirs]
        assert [r.arguments for r in req_ours] == [r.arguments for r in req_theirs]
    assert "### 応答：" in ours.fewshot_context(ours.eval_docs[0], 0)


# JP-Stable's own code, transcribed (Stability-AI/lm-evaluation-harness@jp-stable lm_eval/tasks/ja/*.py and
# lm_eval/base.py Task.fewshot_context), as the reference the harness rendering of our configs must equal.
ALPACA = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"


def _jps_jcqa(doc):
    return {"goal": doc["question"], "choices": [doc[f"choice{i}"] for i in range(5)], "gold": doc["label"]}


def _jps_jcqa_02_text(d):
    choices = ",".join([f"{idx}.{choice}" for idx, choice in enumerate(d["choices"])])
    return f"質問:{d['goal']}\n選択肢:{choices}\n回答:"


def _jps_jcqa_03_text(d):
    choices = "\n".join([f"- {choice}" for choice in d["choices"]])
    instruction_text = (
        "与えられた選択肢の中から、最適な答えを選んでください。" + f"出力は以下から選択してください：\n{choices}"
    )
    return f"### 指示:\n{instruction_text}\n\n### 入力:\n{d['goal']}\n\n### 応答:\n"


_JNLI_CHOICES = ["entailment", "contradiction", "neutral"]
_JNLI_02_DESC = (
    "前提と仮説の関係をentailment、contradiction、neutralの中から回答してください。\n\n"
    + "制約:\n"
    + "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合はentailmentと出力\n"
    + "- 前提と仮説が両立しえない場合はcontradictionと出力\n"
    + "- そのいずれでもない場合はneutralと出力\n\n"
)
_JNLI_03_INSTR = "与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください：\n" + "\n".join(
    _JNLI_CHOICES
)


def _jps_jnli(doc):
    return {
        "premise": doc["sentence1"],
        "hypothesis": doc["sentence2"],
        "choices": _JNLI_CHOICES,
        "gold": int(doc["label"]),
    }


def _jps_marc(choices):
    return lambda doc: {"query": doc["sentence"], "choices": choices, "gold": int(doc["label"])}


JP_STABLE_REFERENCE = {
    # (task, version): (description, FEWSHOT_SEP, _process_doc, doc_to_text, doc_to_target)
    ("jcommonsenseqa", "0.2"): (
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号(例:0)でするものとします。 \n\n",
        "\n\n",
        _jps_jcqa,
        _jps_jcqa_02_text,
        lambda d: f"{d['gold']}",
    ),
    ("jcommonsenseqa", "0.3"): (ALPACA, "\n\n", _jps_jcqa, _jps_jcqa_03_text, lambda d: d["choices"][d["gold"]]),
    ("jnli", "0.2"): (
        _JNLI_02_DESC,
        "\n\n",
        _jps_jnli,
        lambda d: f"前提:{d['premise']}\n仮説:{d['hypothesis']}\n関係:",
        lambda d: d["choices"][d["gold"]],
    ),
    ("jnli", "0.3"): (
        ALPACA,
        "\n\n",
        _jps_jnli,
        lambda d: (
            f"### 指示:\n{_JNLI_03_INSTR}\n\n### 入力:\n前提：{d['premise']}\n仮説：{d['hypothesis']}\n\n### 応答:\n"
        ),
        lambda d: d["choices"][d["gold"]],
    ),
    ("marc_ja", "0.2"): (
        "製品レビューをnegativeかpositiveのいずれかのセンチメントに分類してください。出力は小文字化してください。 \n\n",
        "\n\n",
        _jps_marc(["positive", "negative"]),
        lambda d: f"製品レビュー:{d['query']}\nセンチメント:",
        lambda d: d["choices"][d["gold"]],
    ),
    ("marc_ja", "0.3"): (
        ALPACA,
        "\n\n",
        _jps_marc(["ポジティブ", "ネガティブ"]),
        lambda d: (
            "### 指示:\n以下の製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。"
            f"\n\n### 入力:\n{d['query']}\n\n### 応答:\n"
        ),
        lambda d: d["choices"][d["gold"]],
    ),
    ("jsquad", "0.2"): (
        "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
        "\n\n",
        lambda d: d,
        lambda d: "文章:" + d["context"].split("[SEP]")[-1].strip() + "\n" + "質問:" + d["question"] + "\n" + "回答:",
        lambda d: d["answers"]["text"][0],
    ),
    ("jsquad", "0.3"): (
        ALPACA,
        "\n\n",
        lambda d: d,
        lambda d: (
            "### 指示:\n与えられた文脈から、質問に対する答えを抜き出してください。\n\n### 入力:\n"
            f"文脈：{d['context'].split('[SEP]')[-1].strip()}\n質問：{d['question']}\n\n### 応答:\n"
        ),
        lambda d: d["answers"]["text"][0],
    ),
}


def _jp_stable_context(key, doc, shots):
    description, sep, process, text, target = JP_STABLE_REFERENCE[key]
    labeled = (sep.join(text(process(s)) + target(process(s)) for s in shots) + sep) if shots else ""
    return description + labeled + text(process(doc))


@pytest.mark.parametrize("key", sorted(JP_STABLE_REFERENCE), ids=lambda k: f"{k[0]}-{k[1]}")
def test_jp_stable_prompts_equal_the_jp_stable_code(tmp_path, key):
    task, version = key
    k = jglue.DEFAULT_FEWSHOT[task]
    ours = _jsweep_tasks(write_raw_jglue(tmp_path), {"prompt_versions": version, "num_fewshot": k})[task]
    pool = list(ours.sampler.fewshot_docs())
    ours.sampler.sample = lambda n, eval_doc=None, **_: pool[:n]  # fix the shots: train rows in file order
    for doc, hub_doc in zip(ours.eval_docs, HUB_ROWS[task]["validation"]):
        for shots in (0, k):
            expected = _jp_stable_context(key, hub_doc, HUB_ROWS[task]["train"][:shots])
            assert ours.fewshot_context(doc, shots) == expected
        reqs = ours.construct_requests(doc, "CTX", metadata=("t", 0, 1))
        if task == "jsquad":  # greedy until SEP, at most the longest answer's tokens
            gen = reqs.arguments[1]
            assert gen["until"] == ["\n"] and gen["max_gen_toks"] == max(
                len(_tokenizer().encode(a, add_special_tokens=False)) for a in doc["answers"]["text"]
            )
        else:  # continuations: the bare choice strings
            _, _, process, _, _ = JP_STABLE_REFERENCE[key]
            assert [r.arguments for r in reqs] == [("CTX", c) for c in process(hub_doc)["choices"]]


def test_no_train_file_draws_shots_from_the_scored_split_without_the_scored_doc(tmp_path):
    ours = _jsweep_tasks(write_raw_jglue(tmp_path, train=False), {"num_fewshot": 1})
    for task, t in ours.items():
        assert t.config.test_split == "validation" and t.config.fewshot_split == "validation", task
        for doc in t.eval_docs:
            for _ in range(5):
                ctx = t.fewshot_context(doc, 1)
                assert ctx.count(t.doc_to_text(doc)) == 1, task


# --------------------------------------------------------------------------- metrics and AVG


def test_jsquad_exact_match_and_char_f1():
    # (JP-Stable's exact_match and word f1 against its own code: tests/unit/eval/llm_jp_eval/test_fidelity.py)
    assert M.jsquad_scores("東京", ["東京都", "東京"]) == {"exact_match": 1.0, "f1": 1.0, "char_f1": 1.0}
    assert M.jsquad_scores(" １４００万人 ", ["1400万人"])["exact_match"] == 1.0  # neologdn, stripped
    s = M.jsquad_scores("東京都庁", ["東京都"])  # 3 of 4 chars, 3 of 3
    assert s["exact_match"] == 0.0 and s["char_f1"] == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    assert M.char_f1_one("「滋賀県」。", "滋賀県") == 1.0  # punctuation dropped for F1
    assert M.jsquad_scores("", ["滋賀県"]) == {"exact_match": 0.0, "f1": 0.0, "char_f1": 0.0}
    assert M.process_results({"answers": {"text": ["a", "b"]}}, ["b"]) == {
        "exact_match": 1.0,
        "f1": 1.0,
        "char_f1": 1.0,
    }


def test_avg_is_the_mean_of_the_main_metrics():
    results = {
        "jglue_jcommonsenseqa": {"alias": "x", "acc,none": 0.8, "acc_stderr,none": "N/A", "sample_len": 5},
        "jglue_jnli": {"acc,none": 0.5, "acc_stderr,none": 0.1},
        "jglue_jsquad": {"exact_match,whitespaces": 0.3, "f1,whitespaces": 0.6},
        "jglue_marc_ja": {"acc,none": 0.9},
    }
    names = {f"jglue_{t}": t for t in D.TASKS}
    m = jglue.harness_metrics(results, names)
    assert m == {
        "jglue/jcommonsenseqa/acc": 0.8,
        "jglue/jnli/acc": 0.5,
        "jglue/jsquad/exact_match": 0.3,
        "jglue/jsquad/f1": 0.6,
        "jglue/marc_ja/acc": 0.9,
        "jglue/AVG": pytest.approx((0.8 + 0.5 + 0.3 + 0.9) / 4),
    }
    three = {k: v for k, v in m.items() if "marc_ja" not in k and k != "jglue/AVG"}
    assert jglue.average(three) == pytest.approx((0.8 + 0.5 + 0.3) / 3)  # JSQuAD counts with EM, not F1
    assert jglue.average({}) is None


# --------------------------------------------------------------------------- options and planning


def test_options_defaults_and_errors(tmp_path):
    o = jglue.parse_options({})
    assert o.tasks == ["jcommonsenseqa", "jnli", "jsquad"] and o.marc_ja == "auto" and o.prompt_style == "jp_stable"
    assert o.prompt_versions == {"jcommonsenseqa": "0.3", "jnli": "0.2", "jsquad": "0.2", "marc_ja": "0.2"}
    assert o.num_fewshot == {"jcommonsenseqa": 3, "jnli": 3, "jsquad": 2, "marc_ja": 3}
    assert jglue.parse_options({"num_fewshot": {"jnli": 0}, "prompt_versions": {"jnli": 0.3}}).num_fewshot["jnli"] == 0
    assert [p.task for p in jglue.plan_tasks(o)[0]] == [
        "jcommonsenseqa",
        "jnli",
        "jsquad",
        "marc_ja",
    ]  # fixtures have MARC-ja
    _write_jsonl(tmp_path / "jnli" / "valid-v1.3.json", JNLI_VALID_RAW)
    planned, notes = jglue.plan_tasks(jglue.parse_options({"data_dir": str(tmp_path), "tasks": ["jnli"]}))
    assert [p.task for p in planned] == ["jnli"] and "marc_ja skipped" in notes[0]
    assert jglue.check({"data_dir": str(tmp_path)})[0].startswith(str(tmp_path / "jcommonsenseqa" / "valid-v1.3.json"))
    assert jglue.check({"data_dir": str(tmp_path), "tasks": ["jnli"], "marc_ja": True})[0].startswith(
        str(tmp_path / "marc_ja" / "valid.json")
    )
    # MARC-ja auto never mixes the shipped fixtures into a run on your files
    planned, notes = jglue.plan_tasks(
        jglue.parse_options({"tasks": ["jnli"], "paths": {"jnli": str(tmp_path / "jnli")}})
    )
    assert [p.task for p in planned] == ["jnli"] and "would come from the shipped fixtures" in notes[0]
    _write_jsonl(tmp_path / "marc_ja" / "valid.json", MARC_VALID_RAW)
    planned, _ = jglue.plan_tasks(jglue.parse_options({"data_dir": str(tmp_path), "tasks": ["jnli"]}))
    assert [(p.task, p.files.train) for p in planned] == [("jnli", None), ("marc_ja", None)]
    assert "never downloads MARC-ja" in jglue.check({"hub": True, "tasks": ["marc_ja"]})[0]
    assert [p.files for p in jglue.plan_tasks(jglue.parse_options({"hub": True}))[0]] == [None, None, None]
    for bad, msg in (
        ({"nope": 1}, "unknown key 'eval.jglue.nope'"),
        ({"tasks": ["jsts"]}, "unknown JGLUE task 'jsts'"),
        ({"prompt_style": "x"}, "prompt_style"),
        ({"prompt_versions": {"jnli": "0.4"}}, "0.2 or 0.3"),
        ({"num_fewshot": {"jnli": -1}}, "integer >= 0"),
        ({"limit": 0}, "limit"),
        ({"paths": {"jsts": "x"}}, "paths has unknown task"),
    ):
        with pytest.raises(ConfigError, match=msg):
            jglue.parse_options(bad)


def test_planning_imports_neither_torch_nor_the_harness():
    code = (
        "import sys\nfrom jsweep.compose import compose_spec\nfrom jsweep.sweep import _check_evaluators\n"
        "assert _check_evaluators(compose_spec(['eval=[llm_jp_eval,jglue]'])) == []\n"
        "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- end to end with the tiny model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    model.config._name_or_path = "not-on-any-hub/never-loaded"  # the harness must use the object, not reload
    return model, _tokenizer()


def _ctx(run):
    """A cell context whose tracker is a real CellTracker on a temporary SQLite store (``run``)."""
    return types.SimpleNamespace(
        cell_dir=run.cell_dir,
        tracker=run.tracker,
        device="cpu",
        spec=types.SimpleNamespace(tracking=types.SimpleNamespace(log_predictions=True)),
    )


def test_embedded_default_scores_every_task_on_the_fixtures(stored_run, tiny, capsys):
    model, tok = tiny
    ctx = _ctx(stored_run)
    side = tok.padding_side
    metrics = jglue.JGlueEval({}).evaluate(ctx, model, tok)
    assert set(metrics) == {
        "jglue/jcommonsenseqa/acc",
        "jglue/jnli/acc",
        "jglue/jsquad/exact_match",
        "jglue/jsquad/f1",
        "jglue/jsquad/char_f1",
        "jglue/marc_ja/acc",
        "jglue/AVG",
    }
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["jglue/AVG"] == pytest.approx(
        sum(metrics[f"jglue/{t}/{m}"] for t, m in jglue.MAIN_METRIC.items()) / 4
    )
    assert tok.padding_side == side
    out = capsys.readouterr()
    assert "[jsweep] jglue: AVG=" in out.out and "Map:" not in out.err and "Map:" not in out.out
    # per-sample tables agree with the metrics
    tables = stored_run.tables("jglue/samples/")
    assert sorted(tables) == [f"jglue/samples/{t}.json" for t in sorted(D.TASKS)]
    jcqa = tables["jglue/samples/jcommonsenseqa.json"]
    assert len(jcqa) == 16 and sum(r["acc"] for r in jcqa) / 16 == pytest.approx(metrics["jglue/jcommonsenseqa/acc"])
    assert all((r["prediction"] == r["gold"]) == (r["acc"] == 1.0) for r in jcqa)
    squad = tables["jglue/samples/jsquad.json"]
    assert len(squad) == 14 and squad[0]["answers"] == ["女王蜂"] * 3 and squad[0]["prompt"].endswith("回答:")
    for m in ("exact_match", "f1", "char_f1"):
        assert sum(r[m] for r in squad) / 14 == pytest.approx(metrics[f"jglue/jsquad/{m}"])
    assert stored_run.tags["jglue.jnli_version"] == "1.1" and cfg_jnli_choices(stored_run) == [
        "entailment",
        "contradiction",
        "neutral",
    ]
    assert stored_run.tags["jglue.avg_tasks"] == "jcommonsenseqa/acc,jnli/acc,jsquad/exact_match,marc_ja/acc"
    # config, tags, files
    cfg = stored_run.artifact_json("jglue/task_config.json")
    import lm_eval

    assert cfg["harness_version"] == lm_eval.__version__ == stored_run.tags["jglue.harness_version"]
    assert cfg["task_configs"]["jnli"]["description"].startswith("前提と仮説の関係を")
    assert cfg["task_configs"]["jcommonsenseqa"]["metadata"]["prompt_version"] == "0.3"
    assert stored_run.tags["jglue.prompt_versions"] == "jcommonsenseqa=0.3,jnli=0.2,jsquad=0.2,marc_ja=0.2"
    assert stored_run.tags["jglue.num_fewshot"] == "jcommonsenseqa=3,jnli=3,jsquad=2,marc_ja=3"
    result = json.loads((stored_run.cell_dir / "jglue_results.json").read_text())
    assert result["metrics"] == metrics and result["tasks"]["jsquad"]["n_scored"] == 14
    predictions = [
        json.loads(line) for line in (stored_run.cell_dir / "predictions" / "jglue.jsonl").read_text().splitlines()
    ]
    assert len(predictions) == sum(len(rows) for rows in tables.values())
    assert (stored_run.cell_dir / "jglue_harness.log").exists()


def cfg_jnli_choices(run):
    return run.artifact_json("jglue/task_config.json")["task_configs"]["jnli"]["doc_to_choice"]


def test_leaderboard_style_and_a_lora_model(stored_run, tiny):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    try:
        ctx = _ctx(stored_run)
        metrics = jglue.JGlueEval(
            {"prompt_style": "leaderboard", "limit": 3, "marc_ja": False, "jsquad_max_gen_toks": 4}
        ).evaluate(ctx, lora, tok)
    finally:
        lora.unload()
    # JSQuAD by the harness's own leaderboard metric: exact match against the first gold answer, no F1
    assert set(metrics) == {"jglue/jcommonsenseqa/acc", "jglue/jnli/acc", "jglue/jsquad/exact_match", "jglue/AVG"}
    squad = stored_run.table("jglue/samples/jsquad.json")
    assert all(r["exact_match"] == float(r["prediction"].strip() == r["answers"][0].strip()) for r in squad)
    rows = stored_run.table("jglue/samples/jnli.json")
    assert len(rows) == 3 and rows[0]["choices"] == ["含意", "矛盾", "中立"] and "### 応答：" in rows[0]["prompt"]
    assert stored_run.tags["jglue.prompt_style"] == "leaderboard"


def test_engine_generation_gives_the_harness_answers(tmp_path, tiny):
    """``generation: engine`` (jsweep's batched engine) answers JSQuAD exactly as the harness's own
    ``generate_until`` does under greedy decoding (CPU, fp32), stop strings cut the same way: the JP-Stable
    prompts (stop at a newline, which the tiny model emits first) and the leaderboard ones (longer answers)."""
    from jsweep.tracking import NullTracker

    model, tok = tiny
    for style in ({}, {"prompt_style": "leaderboard", "jsquad_max_gen_toks": 8}):
        answers = {}
        for mode in ("harness", "engine"):
            cell = tmp_path / f"{mode}{len(style)}"
            ctx = types.SimpleNamespace(
                cell_dir=cell,
                tracker=NullTracker(),
                device="cpu",
                spec=types.SimpleNamespace(tracking=types.SimpleNamespace(log_predictions=False)),
            )
            metrics = jglue.JGlueEval({"tasks": ["jsquad"], "marc_ja": False, "generation": mode, **style}).evaluate(
                ctx, model, tok
            )
            rows = [json.loads(line) for line in (cell / "predictions" / "jglue.jsonl").read_text().splitlines()]
            answers[mode] = (metrics, [(r["id"], r["raw"], r["prediction"]) for r in rows])
        assert len(answers["engine"][1]) == 14
        assert answers["engine"] == answers["harness"]
    assert all(raw.strip() for _, raw, _ in answers["engine"][1])  # leaderboard: real generated text compared
    with pytest.raises(ConfigError, match="eval.jglue.generation"):
        jglue.parse_options({"generation": "vllm"})


# --------------------------------------------------------------------------- loglikelihood: shared contexts


def _ll_requests(tok, options, limit):
    """The harness's loglikelihood Instances of the multiple-choice tasks in ``options`` (first ``limit`` docs)."""
    from jsweep.eval.jglue.lm import cached_templates

    tasks, _, _, _ = jglue.JGlueEval(options).build_tasks(tok)
    with cached_templates():
        for task in tasks.values():
            if task.OUTPUT_TYPE == "multiple_choice":
                task.build_all_requests(limit=limit, rank=0, world_size=1)
    return [i for t in tasks.values() if t.OUTPUT_TYPE == "multiple_choice" for i in t.instances]


def _assert_shared_equals_harness(model, tok, requests, **hflm_args):
    """``loglikelihood: shared`` gives the harness's own token ids, loglikelihoods (fp32 tolerance) and greedy
    flags, so the same choice wins in every document."""
    from jsweep.eval.jglue import loglikelihood as LL
    from jsweep.eval.jglue.lm import harness_lm

    harness = harness_lm(model, tok, loglikelihood="harness", batch_size=8, **hflm_args)
    shared = harness_lm(model, tok, loglikelihood="shared", batch_size=8, **hflm_args)
    pairs = [r.args for r in requests]
    assert [(c, t) for _, c, t in LL.encode_pairs(shared, pairs)] == [harness._encode_pair(c, x) for c, x in pairs]
    want, got = harness.loglikelihood(requests), shared.loglikelihood(requests)
    assert len(got) == len(want) == len(requests)
    assert [g for _, g in got] == [g for _, g in want]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], rel=1e-5, abs=1e-4)
    by_doc: dict = {}
    for r, (a, _), (b, _) in zip(requests, want, got):
        by_doc.setdefault((r.task_name, r.doc_id), []).append((a, b))
    for scores in by_doc.values():  # the chosen answer of every document
        assert max(range(len(scores)), key=lambda i: scores[i][0]) == max(
            range(len(scores)), key=lambda i: scores[i][1]
        )
    return want, got


def test_shared_context_loglikelihoods_equal_the_harness_on_the_fixtures(tiny):
    """Every multiple-choice document of the shipped fixtures (JCommonsenseQA, JNLI, MARC-ja): the same
    loglikelihoods as the harness's HFLM, in both prompt styles, with sdpa and with eager attention, on a
    LoRA model, and with requests longer than max_length (truncated on the left by the harness's path)."""
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    requests = _ll_requests(tok, {}, None)
    assert {r.task_name for r in requests} == {"jglue_jcommonsenseqa", "jglue_jnli", "jglue_marc_ja"}
    docs = {(r.task_name, r.doc_id) for r in requests}
    assert len([d for d in docs if d[0] == "jglue_jcommonsenseqa"]) == 16 and len(requests) > 2 * len(docs)
    _assert_shared_equals_harness(model, tok, requests)
    leaderboard = _ll_requests(tok, {"prompt_style": "leaderboard"}, 6)  # the harness's own prompts and delimiters
    assert len({r.args[0] for r in leaderboard}) == 6 * 3
    _assert_shared_equals_harness(model, tok, leaderboard)
    lengths = sorted(len(tok(r.args[0] + r.args[1]).input_ids) for r in requests)
    short = lengths[len(lengths) // 2]  # half the requests need left truncation at this length
    _assert_shared_equals_harness(model, tok, requests, max_length=short)
    attn, model.config._attn_implementation = model.config._attn_implementation, "eager"
    try:
        _assert_shared_equals_harness(model, tok, requests[:40])
    finally:
        model.config._attn_implementation = attn
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    try:
        import torch

        with torch.no_grad():  # a LoRA that changes the outputs (B starts at zero)
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
        _assert_shared_equals_harness(lora, tok, requests[:40])
    finally:
        lora.unload()


def test_shared_context_loglikelihoods_equal_the_harness_on_real_jglue(tiny, real_jglue):
    """Real JGLUE v1.3 dev documents (JCommonsenseQA 3-shot from train, JNLI 3-shot from dev): the same
    loglikelihoods, greedy flags and chosen answers as the harness; the same accuracy end to end."""
    model, tok = tiny
    options = {"data_dir": str(real_jglue), "tasks": ["jcommonsenseqa", "jnli"], "marc_ja": False}
    requests = _ll_requests(tok, options, 40)
    assert len(requests) == 40 * 5 + 40 * 3
    _assert_shared_equals_harness(model, tok, requests)


def test_loglikelihood_option_scores_and_cell_ids(tmp_path, tiny):
    from jsweep.compose import compose_spec
    from jsweep.identity import cell_id
    from jsweep.tracking import NullTracker

    model, tok = tiny
    metrics = {}
    for mode in ("harness", "shared"):
        ctx = types.SimpleNamespace(
            cell_dir=tmp_path / mode,
            tracker=NullTracker(),
            device="cpu",
            spec=types.SimpleNamespace(tracking=types.SimpleNamespace(log_predictions=False)),
        )
        options = {"tasks": ["jcommonsenseqa", "jnli"], "marc_ja": False, "loglikelihood": mode}
        metrics[mode] = jglue.JGlueEval(options).evaluate(ctx, model, tok)
    assert metrics["shared"] == metrics["harness"]
    with pytest.raises(ConfigError, match="eval.jglue.loglikelihood"):
        jglue.parse_options({"loglikelihood": "fast"})
    # the default is not part of the cell id (cells made before the option keep their ids); harness is
    default = compose_spec([]).to_dict()
    assert default["eval"]["jglue"]["loglikelihood"] == "shared"
    before = json.loads(json.dumps(default))
    del before["eval"]["jglue"]["loglikelihood"]
    assert cell_id(default) == cell_id(before)
    assert cell_id(compose_spec(["eval.jglue.loglikelihood=harness"]).to_dict()) != cell_id(default)


def test_shared_context_batches_are_sized_by_memory_and_back_off_on_out_of_memory(tiny, monkeypatch):
    """With a memory budget (a GPU's with ``batch_size: auto``), rows per batch follow what one row of the
    batch's width costs, and an out-of-memory error halves the budget and retries: the same scores."""
    from jsweep.eval.jglue import loglikelihood as LL
    from jsweep.eval.jglue.lm import harness_lm

    model, tok = tiny
    lm = harness_lm(model, tok, loglikelihood="shared", batch_size="auto", max_batch_size=64)
    requests = LL.encode_pairs(lm, [r.args for r in _ll_requests(tok, {}, None)])
    want = LL.loglikelihood_shared(lm, requests)
    docs = LL.group(requests)
    one_row = LL.row_bytes(model, -(-docs[0].width // 8) * 8, docs[0].width - len(docs[0].ctx) + 1)
    sizes, said, real = [], [], LL.score_batch

    def score(lm_, batch, keep_arg):
        sizes.append(len(batch))
        if len(sizes) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(lm_, batch, keep_arg)

    monkeypatch.setattr(LL, "score_batch", score)
    got = LL.loglikelihood_shared(lm, requests, say=said.append, budget=6 * one_row)
    assert [x for x, _ in got] == pytest.approx([x for x, _ in want]) and [g for _, g in got] == [g for _, g in want]
    assert sizes[0] == 6 and sizes[1] == 3 and sum(sizes[1:]) == len(docs)
    assert max(sizes[1:]) > 3  # shorter rows (later: longest first) fit more of them in the same budget
    assert any("out of memory with 6 rows" in m for m in said)
    assert any("rows of shared context" in m for m in said)


def test_shared_context_failure_falls_back_to_the_harness_with_a_line_in_the_log(tiny, monkeypatch, capsys):
    from jsweep.eval.jglue import loglikelihood as LL
    from jsweep.eval.jglue.lm import harness_lm

    model, tok = tiny
    requests = _ll_requests(tok, {"tasks": ["jnli"], "marc_ja": False}, 3)
    want = harness_lm(model, tok, loglikelihood="harness", batch_size=8).loglikelihood(requests)

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this mask\nsecond line")

    monkeypatch.setattr(LL, "loglikelihood_shared", broken)
    got = harness_lm(model, tok, loglikelihood="shared", batch_size=8).loglikelihood(requests)
    assert got == want
    out = capsys.readouterr().out
    assert "shared-context scoring failed (RuntimeError: no kernel for this mask)" in out
