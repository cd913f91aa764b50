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
LOADERS: Registry = Registry(
    "dataset loader",
    {
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
    },
)

# What each trainer trains on: "sft" (conversations) or "preference" (pairs). Checked before a sweep runs
# against the records the dataset's loader declares (jsweep.data.load.dataset_records).
TRAINER_RECORDS = {"sft": "sft", "dpo": "preference"}

# Prompt formats: how an Example becomes (prompt, completion) text. Pure Python.
PROMPT_FORMATS: Registry = Registry(
    "prompt format",
    {
        "alpaca_ja": "jsweep.data.formats:ALPACA_JA",
        "llmjp": "jsweep.data.formats:LLMJP",
        "chat_template": "jsweep.data.formats:CHAT_TEMPLATE",
    },
)

# Trainers: run one cell's training in its own process (imports torch/TRL). jsweep.job.protocols.Trainer.
TRAINERS: Registry = Registry(
    "trainer",
    {
        "sft": "jsweep.job.sft:train_sft",
        "dpo": "jsweep.job.dpo:train_dpo",
    },
)

# Evaluators: each name maps to the evaluator's Declaration (jsweep.eval.declaration): its class
# (jsweep.eval.protocols.Evaluator, imported when a cell is scored), headline metrics with their
# direction, pre-flight checks, intervals, contamination. Importing a declaration imports no torch.
# The order is the order the report tries headlines in when --metric is not given.
EVALUATORS: Registry = Registry(
    "evaluator",
    {
        "llm_jp_eval": "jsweep.eval.llm_jp_eval:EVALUATOR",
        "jglue": "jsweep.eval.jglue:EVALUATOR",
        "elyza_tasks_100": "jsweep.eval.elyza:EVALUATOR",
        "human_eval": "jsweep.eval.samples:HUMAN_EVAL",
        "samples": "jsweep.eval.samples:SAMPLES",
        "heldout": "jsweep.eval.heldout:EVALUATOR",
    },
)

# Evaluators scored by the LLM judge (config group ``judge``): its config is checked before a sweep runs.
JUDGED_EVALUATORS = EVALUATORS.where("judged")
