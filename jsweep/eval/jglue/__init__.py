"""JGLUE through lm-evaluation-harness: local data adapters, JP-Stable prompt configs, JSQuAD metrics.

- :mod:`.evaluator`: options, task planning, running the harness, the evaluator ``JGlueEval``;
- :mod:`.data`: find and read local JGLUE files (raw v1.3 layout or hub schema) into hub rows (pure Python);
- :mod:`.jp_stable`: JP-Stable prompt versions 0.2 / 0.3 as harness task configs (pure Python);
- :mod:`.metrics`: JSQuAD exact match and character F1 (pure Python);
- :mod:`.harness`: build the harness's ConfigurableTask objects (imports lm_eval);
- :mod:`.checks`: pre-flight file check, the per-cell interval from the harness's stderr, report columns.

``EVALUATOR`` is its declaration (jsweep.eval.declaration); importing this package imports no torch.
"""

from jsweep.eval.declaration import Declaration, Headline

EVALUATOR = Declaration(
    name="jglue",
    implementation="jsweep.eval.jglue.evaluator:JGlueEval",
    headlines=(Headline("jglue/AVG", higher_is_better=True, scale="0-1"),),
    check="jsweep.eval.jglue.evaluator:check",
    files="jsweep.eval.jglue.checks:check_files",
    data_hint=(
        "eval.jglue.data_dir",
        "git clone https://github.com/yahoojapan/JGLUE, then eval.jglue.data_dir=JGLUE/datasets "
        "(or eval.jglue.hub=true to fetch it online)",
    ),
    interval="jsweep.eval.jglue.checks:stderr_interval",
    interval_basis="harness stderr",
    task_metrics="jsweep.eval.jglue.checks:task_metrics",
    numbers={
        "limit": (1, (None,)),
        "batch_size": (1, ("auto",)),
        "fewshot_seed": (0, ()),
        "jsquad_max_gen_toks": (1, (None,)),
        "max_length": (1, (None,)),
        "num_fewshot.*": (0, ()),
    },
)
