"""Mutation score of jsweep's core modules (issue 21): mutmut mutates one module at a time and runs
only the fast tests that cover it. Outside CI: CPU-heavy (minutes per module on 2 cores).

    python scripts/mutation.py                 # every module below
    python scripts/mutation.py identity redaction

Each module runs in a scratch copy of the repository (mutmut writes its mutants/ there), with a
[tool.mutmut] section of its own; the score (killed / all mutants) and the surviving mutants go to
benchmarks/results/mutation-<module>.txt and are printed. Record them in docs/testing.md.

A "module" may also be a set of functions inside larger files ("retry": the retry and resume helpers
of jsweep/sweep.py and jsweep/job/sft.py): mutmut mutates the files, runs only the mutants of those
functions (mutant-name globs given to ``mutmut run``) and the score counts only them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module -> (file(s) to mutate, the fast tests that cover them[, only the mutants of these functions])
MODULES: dict[str, tuple] = {
    "identity": (
        "jsweep/identity.py",
        [
            "tests/unit/launcher/test_identity.py::test_the_cell_id_follows_the_data_content_not_only_its_name",
            "tests/unit/launcher/test_identity.py::test_the_cell_id_follows_the_model_revision_and_every_result_changing_key",
            "tests/unit/launcher/test_identity.py::test_cosmetic_keys_do_not_change_the_cell_id",
            "tests/unit/launcher/test_identity.py::test_the_cell_id_changes_with_the_jsweep_version",
            "tests/unit/launcher/test_identity.py::test_the_cell_id_is_canonical_json_of_the_payload_whatever_the_key_order",
        ],
    ),
    "redaction": (
        "jsweep/redaction.py",
        [
            "tests/unit/test_redaction.py",
            "tests/integration/test_survive.py::test_redaction_masks_credentials_but_keeps_token_counts",
        ],
    ),
    "scheduler": (
        "jsweep/scheduler.py",
        [
            "tests/unit/launcher/test_scheduler.py",
            "tests/integration/test_where.py::test_gpu_discovery_reads_cuda_visible_devices_then_nvidia_smi",
        ],
    ),
    # test_known_answers.py is left out: it loads and runs the tiny model for each mutant (about 3 minutes a
    # mutant on the shared CPU); the scoring it checks end to end is checked here in-process.
    "metrics": (
        "jsweep/eval/llm_jp_eval/metrics.py",
        [
            "tests/unit/eval/llm_jp_eval/test_llm_jp_eval.py",
            "tests/unit/eval/llm_jp_eval/test_mutation_kills_metrics.py",
        ],
    ),
    # test_generate.py's engine-equals-one-by-one test is left out: it decodes every fixture task three
    # times (about 40 s, the whole selection's time for each surviving mutant); the same comparison on
    # five prompts, a shared prefix and mixed budgets is in the tests selected here.
    "generate": (
        "jsweep/eval/generate.py",
        [
            "tests/unit/eval/test_generate.py::test_mixed_budgets_share_batches_and_each_row_keeps_its_own",
            "tests/unit/eval/test_generate.py::test_shared_prefix_length_leaves_every_row_a_token",
            "tests/unit/eval/test_generate.py::test_out_of_memory_halves_the_batch_and_loses_nothing",
            "tests/unit/eval/test_generate.py::test_planner_sizes_by_tokens_on_a_gpu_and_by_rows_elsewhere",
            "tests/unit/eval/test_mutation_kills_generate.py",
            # the vLLM hand-over (eval.backend=vllm) of generate(), against the scripted stand-in
            "tests/unit/eval/test_vllm_backend.py::test_generate_hands_jsweeps_token_ids_to_vllm_and_returns_the_same_completions_in_order",
            "tests/unit/eval/test_generate.py::test_decode_groups_merge_only_the_small_long_budget_tail",
            "tests/unit/eval/test_generate.py::test_decode_groups_cost_model_at_its_edges",
            "tests/unit/eval/test_generate.py::test_decoding_on_a_gpu_leaves_out_cudnn_attention_and_restores_the_flags",
        ],
    ),
    # the engine's GPU decoding plan, added after the whole module's run: the long-budget tail's grouping and
    # the attention kernels while decoding (the same tests; only these functions' mutants)
    "generate_plan": (
        "jsweep/eval/generate.py",
        [
            "tests/unit/eval/test_generate.py::test_mixed_budgets_share_batches_and_each_row_keeps_its_own",
            "tests/unit/eval/test_generate.py::test_decode_groups_merge_only_the_small_long_budget_tail",
            "tests/unit/eval/test_generate.py::test_decode_groups_cost_model_at_its_edges",
            "tests/unit/eval/test_generate.py::test_decoding_on_a_gpu_leaves_out_cudnn_attention_and_restores_the_flags",
        ],
        ["jsweep.eval.generate.x_decode_groups", "jsweep.eval.generate.x_attention_backends"],
    ),
    # Retry and resume: the pure helpers the launcher and the cell decide with (the OOM retry's new
    # micro-batch, the complete checkpoints to resume from, whether a FINISHED cell's results are whole,
    # the whole run's mean loss after a resume). SweepRunner.retry/triage and sft.run_training are
    # reached only through the CLI's subprocesses (test_resilience, test_promises), not in-process.
    "retry": (
        ["jsweep/sweep.py", "jsweep/cellstate.py", "jsweep/job/sft.py"],
        [
            "tests/unit/job/test_final_loss.py::test_final_loss_of_an_uninterrupted_run_is_the_trainers_own",
            "tests/unit/job/test_final_loss.py::test_final_loss_of_a_resumed_run_averages_every_step_of_the_run",
            "tests/unit/job/test_final_loss.py::test_final_loss_weights_each_logged_loss_by_its_logging_interval",
            "tests/unit/launcher/test_mutation_kills_retry.py",
        ],
        [
            "jsweep.sweep.x_retry_spec",
            "jsweep.cellstate.x_checkpoints",
            "jsweep.sweep.x_damage",
            "jsweep.job.sft.x_run_mean_loss",
        ],
    ),
}
FAST = "-m 'not slow and not gpu'"
# mutmut's timeout is a CPU-time limit, (estimated test seconds + constant) x multiplier x 2, and its
# estimate leaves out fixture set-up. The generate tests load the tiny model for every mutant (about
# 25 CPU-s for the whole selection): with the defaults (1 s, x15) a mutant that survives them ran out
# of CPU time and was counted as a "timeout" kill. Per module: (timeout_constant, timeout_multiplier).
TIMEOUTS: dict[str, tuple[float, float]] = {"generate": (20.0, 3.0), "generate_plan": (20.0, 3.0)}


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in items) + "]"


def run(module: str) -> str:
    target, tests, *rest = MODULES[module]
    targets = [target] if isinstance(target, str) else list(target)
    names = [f"{fn}__mutmut_*" for fn in (rest[0] if rest else [])]
    # MUTATION_KEEP=1 keeps the scratch copy (its path is printed) to look at or re-run single mutants there.
    keep = os.environ.get("MUTATION_KEEP") == "1"
    scratch = tempfile.mkdtemp(prefix=f"mutation-{module}-") if keep else None
    with (
        contextlib.nullcontext(scratch) if scratch else tempfile.TemporaryDirectory(prefix=f"mutation-{module}-") as tmp
    ):
        if keep:
            print(f"{module}: scratch copy kept in {tmp}", flush=True)
        work = Path(tmp)
        for name in ("jsweep", "hydra_plugins", "conf", "tests"):
            if (ROOT / name).exists():
                shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Tests that only run CLI subprocesses never reach the mutated code in-process: not selected here.
        config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        config += (
            f'\n[tool.mutmut]\nsource_paths = ["jsweep"]\nonly_mutate = {toml_list(targets)}\n'
            f"also_copy = {toml_list(['hydra_plugins', 'conf', 'tests'])}\n"
            f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not slow and not gpu", "-q"]\n'
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        )
        if module in TIMEOUTS:
            config += f"timeout_constant = {TIMEOUTS[module][0]}\ntimeout_multiplier = {TIMEOUTS[module][1]}\n"
        (work / "pyproject.toml").write_text(config, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        # One torch thread per mutmut child (it runs --max-children of them): idle OpenMP threads spin and
        # burn the CPU-time limit that is mutmut's timeout.
        env.setdefault("OMP_NUM_THREADS", "1")
        mutmut = [sys.executable, "-m", "mutmut"]
        proc = subprocess.run(
            [*mutmut, "run", "--max-children", os.environ.get("MUTATION_JOBS", "2"), *names],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        tail = proc.stdout[-3000:] + proc.stderr[-3000:]
        results = subprocess.run(
            [*mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True
        ).stdout
        statuses = re.findall(r"^\s*(\S+): (\w[\w ]*)$", results, flags=re.M)
        if names:  # only the selected functions' mutants count
            statuses = [(n, st) for n, st in statuses if any(fnmatch.fnmatch(n, g) for g in names)]
        counts: dict[str, int] = {}
        for _, status in statuses:
            counts[status] = counts.get(status, 0) + 1
        survived = [name for name, status in statuses if status == "survived"]
        timed_out = [name for name, status in statuses if status == "timeout"]
        untested = sorted({name.split("__mutmut_")[0] for name, status in statuses if status == "no tests"})
        diffs = "\n".join(
            subprocess.run([*mutmut, "show", name], cwd=work, env=env, capture_output=True, text=True).stdout
            for name in survived
        )
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    score = f"{module}: {killed}/{total} killed ({100 * killed / max(total, 1):.1f}%) {counts}"
    out = ROOT / "benchmarks" / "results" / f"mutation-{module}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    only = f"only the mutants of: {' '.join(rest[0])}\n" if rest else ""
    out.write_text(
        f"{score}\nmutated: {' '.join(targets)}\n{only}tests: {' '.join(tests)}\n"
        f"functions no selected test reaches: {' '.join(untested)}\n"
        f"timed out (counted as killed; CPU-time limit): {' '.join(timed_out)}\n"
        f"\n# surviving mutants\n{diffs}\n# mutmut run (tail)\n{tail}\n",
        encoding="utf-8",
    )
    return score


def main(argv: list[str]) -> int:
    names = argv or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
        return 2
    for name in names:
        print(run(name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
