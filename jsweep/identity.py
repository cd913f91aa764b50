"""Cell identity: a digest of everything that determines a cell's result.

Counted: the resolved cell config except the cosmetic keys below, and the jsweep version.
Not counted (changing them does not make a new cell): where outputs and logs go
(``output_root``, ``tracking.*``, ``launcher.*``), the LLM judge (``judge.*``), logging cadence (``train.logging_steps``),
and the cell's own override labels. Keys added to the config after cells were made count only away from
their default (``LATER_KEYS``, ``LATER_NESTED``): a cell that leaves them alone keeps the id it had before they existed.
Dataset content digests and the base model's revision are added by the planner through ``extra`` when
they are known.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jsweep import __version__

# judge: who scores the answers does not change them; a new judge re-judges the saved answers (jsweep judge).
COSMETIC_TOP = ("output_root", "tracking", "launcher", "overrides", "experiment", "judge")
COSMETIC_NESTED = (("train", "logging_steps"),)
# key -> default: left out of the payload at the default, so existing cell ids stay as they were.
LATER_KEYS = {"eval_backend": "transformers"}  # eval.backend=vllm can change the generated tokens
# nested keys (path -> default), the same way
LATER_NESTED = {
    ("train", "dropout"): None,  # train.dropout: null keeps the model's own dropout
    # one forward pass per shared context; the harness's loglikelihoods within float tolerance (tests/unit/eval/jglue)
    ("eval", "jglue", "loglikelihood"): "shared",
}


def identity_payload(cell_dict: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = {
        k: v for k, v in cell_dict.items() if k not in COSMETIC_TOP and not (k in LATER_KEYS and v == LATER_KEYS[k])
    }
    payload = json.loads(json.dumps(payload, sort_keys=True, default=str))
    for section, key in COSMETIC_NESTED:
        payload.get(section, {}).pop(key, None)
    for path, default in LATER_NESTED.items():
        node = payload
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == default:
            del node[path[-1]]
    payload["jsweep_version"] = __version__
    if extra:
        payload["extra"] = extra
    return payload


def cell_id(cell_dict: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    blob = json.dumps(identity_payload(cell_dict, extra), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
