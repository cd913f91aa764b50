"""llm-jp-eval (v1.4.1 protocol): prompts, answers and metrics reimplemented in pure Python.

- :mod:`.evaluator`: options, tasks, prompts, answer extraction, scoring, the evaluator ``LlmJpEval``;
- :mod:`.metrics`: the metrics, categories and averages of llm-jp-eval v1.4.1;
- :mod:`.checks`: pre-flight file checks, the per-cell bootstrap interval, per-task report columns;
- :mod:`.contamination`: the samples a cell is scored on, for the training-data contamination check;
- :mod:`.prepare`: raw JGLUE -> llm-jp-eval evaluation data (``jsweep prepare llm-jp-eval``).

``EVALUATOR`` is its declaration (jsweep.eval.declaration); importing this package imports no torch.
"""

from jsweep.eval.declaration import Declaration, Headline

EVALUATOR = Declaration(
    name="llm_jp_eval",
    implementation="jsweep.eval.llm_jp_eval.evaluator:LlmJpEval",
    headlines=(
        Headline("llm_jp_eval/AVG", higher_is_better=True, scale="0-1"),
        Headline("llm_jp_eval/AVG_partial", higher_is_better=True, scale="0-1", optional=True),
    ),
    check="jsweep.eval.llm_jp_eval.checks:preflight",
    data_hint=(
        "eval.llm_jp_eval.data_dir",
        "python -m jsweep prepare llm-jp-eval --jglue /path/to/JGLUE/datasets --out data/llm-jp-eval, "
        "then eval.llm_jp_eval.data_dir=data/llm-jp-eval (or llm-jp-eval's own preprocess_dataset.py output)",
    ),
    contamination="jsweep.eval.llm_jp_eval.contamination:collect",
    contamination_always=True,
    interval="jsweep.eval.llm_jp_eval.checks:bootstrap_interval",
    interval_basis="bootstrap over samples",
    task_metrics="jsweep.eval.llm_jp_eval.checks:task_metrics",
    numbers={"num_few_shots": (0, ()), "max_num_samples": (1, (-1,)), "batch_size": (1, ("auto",))},
    choices={"split": ("test", "dev")},
)
