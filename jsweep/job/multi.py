"""A multi-GPU cell: ``python -m jsweep.job.multi <cell_dir> <nproc>``.

1. train: ``torchrun`` starts one process per GPU (DDP, or DeepSpeed ZeRO with the config the
   launcher wrote to ``<cell_dir>/deepspeed.json``); rank 0 logs and saves the whole model
   (ZeRO-3 weights are gathered on save).
2. eval: one process on the cell's first GPU loads the saved model and runs the evaluators.

Both stages run in this process's group, so stopping the cell stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from jsweep import cellstate
from jsweep.distributed import train_command


def write_deepspeed_config(cell_dir: Path, visible: str) -> None:
    """Where the launcher could not see the cell's GPUs (they are allocated by a batch system on the node
    the cell runs on), the DeepSpeed config is written here, from the GPUs this process was given."""
    path = cell_dir / "deepspeed.json"
    if path.exists():
        return
    from jsweep.distributed import deepspeed_config, gpu_facts, uses_bf16
    from jsweep.files import write_json
    from jsweep.schema import cell_from_dict

    spec = cell_from_dict(cellstate.meta(cell_dir)["spec"])
    if spec.distributed.backend != "deepspeed":
        return
    ids = {int(x) for x in visible.split(",") if x.strip().isdigit()}
    facts = [g for g in gpu_facts() if g["index"] in ids]
    write_json(path, deepspeed_config(spec, uses_bf16(spec, facts)))


def main(argv: list[str]) -> int:
    cell_dir, nproc = Path(argv[0]).resolve(), int(argv[1])
    env = dict(os.environ)
    if not env.get("CUDA_VISIBLE_DEVICES"):
        env.setdefault("DS_ACCELERATOR", "cpu")  # CPU test runs (resources.cpu_processes=true)
    child: subprocess.Popen | None = None

    def forward(signum, frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    write_deepspeed_config(cell_dir, env.get("CUDA_VISIBLE_DEVICES", ""))
    child = subprocess.Popen(train_command(str(cell_dir), nproc), env=env)
    rc = child.wait()
    status = json.loads((cell_dir / cellstate.STATUS).read_text()) if (cell_dir / cellstate.STATUS).exists() else {}
    if rc != 0:
        return rc
    if status.get("status") == "FINISHED":  # nothing to evaluate: the train stage finished the cell
        return 0
    if status.get("status") != "TRAINED":
        return 1
    first = env.get("CUDA_VISIBLE_DEVICES", "").split(",")[0]
    env_eval = {**env, "CUDA_VISIBLE_DEVICES": first}
    child = subprocess.Popen([sys.executable, "-m", "jsweep.job.cell", str(cell_dir), "--stage", "eval"], env=env_eval)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
