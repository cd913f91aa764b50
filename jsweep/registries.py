"""The registries of jsweep's pluggable parts, by name.

Each entry is "module:attribute" and is imported only when a cell uses it, so planning a
sweep (which only checks names) imports no torch. Add a part by writing the implementation
and one line here; a config file under conf/ then selects it by name.
"""

from __future__ import annotations

from jsweep.registry import Registry

# Record-format loaders: rows of one source -> list[Example] (or list[PreferenceExample]). Pure Python
# (jsweep.data.protocols.Loader); each declares what it yields and the dataset.field_map keys it reads
# (jsweep.data.protocols.loader). "mixture" is the one composite: it takes no rows but loads and mixes
# other presets (jsweep.data.mixture; jsweep.data.load picks it for loader: mixture).
LOADERS: Registry = Registry("dataset loader", {
    "dolly": "jsweep.data.loaders:load_dolly",
    "ichikara": "jsweep.data.loaders:load_ichikara",
    "oasst": "jsweep.data.loaders:load_oasst",
    "alpaca": "jsweep.data.loaders:load_alpaca",
    "jaster": "jsweep.data.loaders:load_jaster",
    "generic": "jsweep.data.loaders:load_generic",
    "hh_rlhf": "jsweep.data.preference:load_hh_rlhf",
    "chatbot_arena": "jsweep.data.preference:load_chatbot_arena",
    "preference": "jsweep.data.preference:load_preference",
    "mixture": "jsweep.data.mixture:load_mixture",
})

# What each trainer trains on: "sft" (conversations) or "preference" (pairs). Checked before a sweep runs
# against the records the dataset's loader declares (jsweep.data.load.dataset_records).
TRAINER_RECORDS = {"sft": "sft", "dpo": "preference"}

# Prompt formats: how an Example becomes (prompt, completion) text. Pure Python.
PROMPT_FORMATS: Registry = Registry("prompt format", {
    "alpaca_ja": "jsweep.data.formats:ALPACA_JA",
    "llmjp": "jsweep.data.formats:LLMJP",
    "chat_template": "jsweep.data.formats:CHAT_TEMPLATE",
})

# Trainers: run one cell's training in its own process (imports torch/TRL). jsweep.job.protocols.Trainer.
TRAINERS: Registry = Registry("trainer", {
    "sft": "jsweep.job.sft:train_sft",
    "dpo": "jsweep.job.dpo:train_dpo",
})

# Evaluators: score a trained model (imports torch). jsweep.eval.protocols.Evaluator.
EVALUATORS: Registry = Registry("evaluator", {
    "llm_jp_eval": "jsweep.eval.llm_jp_eval:LlmJpEval",
    "jglue": "jsweep.eval.jglue:JGlueEval",
    "elyza_tasks_100": "jsweep.eval.elyza:ElyzaTasks100",
    "human_eval": "jsweep.eval.samples:HumanEval",
    "samples": "jsweep.eval.samples:Samples",
    "heldout": "jsweep.eval.heldout:HeldOut",
})

# Evaluators scored by the LLM judge (config group ``judge``): its config is checked before a sweep runs.
JUDGED_EVALUATORS = frozenset({"elyza_tasks_100"})
