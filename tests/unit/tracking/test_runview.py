"""What a cell's MLflow run shows: compared settings as params (not the flattened config), the
config digest, and run names that hold every result-changing override."""

from __future__ import annotations

from jsweep.compose import compose_spec
from jsweep.runview import cell_params, config_digest, run_name


def test_params_are_the_compared_settings_and_the_grid_axes():
    spec = compose_spec(
        [
            "model=open-calm-7b",
            "method=sft_lora",
            "train.micro_batch_size=2",
            "train.grad_accum=64",
            "train.epochs=3",
            "lr=3e-4",
            "method.lora.alpha=16",
            "train.warmup_steps=100",
            "prompt.train_on_inputs=true",
            "eval=[]",
        ]
    )
    params = cell_params(spec.to_dict(), ["lr", "train.warmup_steps", "prompt.train_on_inputs", "launcher.dry_run"])
    assert params["model"] == "open-calm-7b" and params["effective_batch"] == "128" and params["epochs"] == "3"
    assert params["lr"] == "0.0003" and params["lora.alpha"] == "16" and params["warmup_steps"] == "100"
    assert params["prompt.train_on_inputs"] == "True" and params["seed"] == "0" and params["data_seed"] == "0"
    assert "train.warmup_steps" in params and "launcher.dry_run" not in params  # an axis gets its own column
    assert len(params) < 40 and len(params["config_digest"]) == 16


def test_the_digest_tells_configs_apart():
    a, b = (compose_spec(["eval=[]", f"train.epochs={e}"]).to_dict() for e in (1, 2))
    assert config_digest(a) != config_digest(b)
    assert config_digest(a) == config_digest({**a, "overrides": ["x=1"]})


def test_run_names_hold_fixed_overrides_and_leave_out_bookkeeping():
    assert (
        run_name(
            ["dataset=dolly", "lr=1e-05"],
            ["train.epochs=3", "launcher.dry_run=false", "dataset=dolly", "tracking.experiment=x", "+method.lora.r=16"],
        )
        == "dataset=dolly lr=1e-05 train.epochs=3 method.lora.r=16"
    )
    assert run_name([], []) == "(defaults)"


def test_headline_metrics_sort_before_the_bookkeeping():
    from jsweep.runview import headline_metrics

    metrics = {
        "llm_jp_eval/AVG": 0.4,
        "eval/loss": 2.0,
        "data/contamination/llm_jp_eval/overlap_ratio": 0.0,
        "jglue/AVG": float("nan"),
    }
    head = headline_metrics(metrics)
    assert head == {"Headline/1_llm_jp_eval/AVG": 0.4, "Headline/4_eval/loss": 2.0}
    assert sorted([*head, *metrics])[:2] == ["Headline/1_llm_jp_eval/AVG", "Headline/4_eval/loss"]
