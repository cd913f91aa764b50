"""Data provenance in MLflow: what a cell trained on, through MLflow's dataset tracking.

:func:`log_dataset_input` logs the loaded data as an MLflow dataset input (``mlflow.log_input``,
context ``training``): name = the dataset's name, digest = jsweep's content digest of the records
actually used (so two runs on different data never share a digest), source = the hub id and
revision (a Hugging Face source), the local file or directory (fixtures and ``dataset.path``), or
for a mixture a source listing its components. Schema and row count come from a table of the
records (only metadata is stored, not the data). The input's tags carry the full digest, n,
records read/dropped, the drop reasons and the licence. A mixture also logs one input per
component (context ``training_component``) with the component's own source and the digest of its
part of the mixture.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from jsweep.data.records import PreferenceExample, Record

DIGEST_CHARS = 32  # MLflow stores at most 36 characters of a dataset digest


def records_frame(examples: list[Record]):
    """A pandas table of the records: id, prompt (JSON turns), input/target or chosen/rejected, component."""
    import pandas as pd

    rows = []
    for ex in examples:
        if isinstance(ex, PreferenceExample):
            rows.append(
                {
                    "id": ex.id,
                    "prompt": json.dumps([m.__dict__ for m in ex.prompt], ensure_ascii=False),
                    "chosen": ex.chosen,
                    "rejected": ex.rejected,
                    "component": ex.meta.get("component", ""),
                }
            )
        else:
            rows.append(
                {
                    "id": ex.id,
                    "prompt": json.dumps([m.__dict__ for m in ex.prompt_messages], ensure_ascii=False),
                    "input": ex.input,
                    "target": ex.target,
                    "component": ex.meta.get("component", ""),
                }
            )
    return pd.DataFrame(rows)


def _mixture_source_class():
    from mlflow.data.dataset_source import DatasetSource

    class JsweepMixtureSource(DatasetSource):
        """A jsweep mixture: its components' sources (hub id@revision or path) and shares."""

        def __init__(self, components: dict[str, Any]):
            self.components = components

        @staticmethod
        def _get_source_type() -> str:
            return "jsweep_mixture"

        def load(self, **kwargs):
            raise NotImplementedError("load a jsweep mixture with jsweep.data.load.load_examples")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any):
            raise NotImplementedError

        def to_dict(self) -> dict[str, Any]:
            return {"components": self.components}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]):
            return cls(source_dict.get("components", {}))

    return JsweepMixtureSource


def dataset_source(src: Any, spec: Any = None):
    """The MLflow DatasetSource of a jsweep Source (hub, fixture/path, or mixture)."""
    if src.kind == "hub":
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        return HuggingFaceDatasetSource(
            path=src.location, revision=src.revision, data_files=src.hub_file, split="train"
        )
    if src.parts:
        comps = {
            name: {"kind": c.kind, "location": c.location, "revision": c.revision} for name, c in src.parts.items()
        }
        return _mixture_source_class()(comps)
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "can be interpreted in multiple ways": both are local files
        return resolve_dataset_source(src.location)


def _log(target: Any, dataset: Any, context: str, tags: dict[str, Any], run_id: str | None) -> None:
    """Log one input through an MlflowClient (+ run_id), a jsweep CellTracker (its client and run), or the
    mlflow module (the active run). ``tags``: values are logged as text, None ones left out."""
    from mlflow.tracking import MlflowClient

    tags = {k: str(v)[:5000] for k, v in tags.items() if v is not None}
    client = target if isinstance(target, MlflowClient) else getattr(target, "client", None)
    if isinstance(client, MlflowClient):
        from mlflow.entities import DatasetInput, InputTag

        run_id = run_id or getattr(target, "run_id", None)
        if not run_id:
            raise ValueError("log_dataset_input with an MlflowClient needs run_id=")
        all_tags = [InputTag("mlflow.data.context", context)] + [InputTag(k, v) for k, v in tags.items()]
        client.log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(), all_tags)])
        return
    if hasattr(target, "log_input"):  # the mlflow module
        target.log_input(dataset, context=context, tags=tags)
        return
    mlflow = getattr(target, "mlflow", None)  # an object holding the module
    if mlflow is None:
        raise TypeError(f"cannot log a dataset input through {type(target).__name__}")
    mlflow.log_input(dataset, context=context, tags=tags)


def log_dataset_input(
    tracker_or_mlflow: Any, loaded_data: Any, spec: Any, *, run_id: str | None = None, context: str = "training"
) -> Any:
    """Log what a cell trained on as MLflow dataset input(s); returns the logged (mixture) dataset.

    ``tracker_or_mlflow``: a jsweep CellTracker (its client and run), the ``mlflow`` module (the active run),
    or an ``MlflowClient`` together with ``run_id``. ``loaded_data``: jsweep.data.load.LoadedData. ``spec``:
    the CellSpec (or its DatasetSpec). Through a CellTracker, the provenance dict is also logged with its
    ``log_dict`` (kept in the cell directory if tracking is down) as ``data_provenance.json``, and a
    tracking failure is a printed warning, not an error (training goes on, as for the tracker's own calls).
    """
    from jsweep.tracking import CellTracker, NullTracker

    if isinstance(tracker_or_mlflow, NullTracker):
        return None  # ranks > 0 of a multi-GPU cell: rank 0 logs
    if isinstance(tracker_or_mlflow, CellTracker):
        tracker_or_mlflow.log_dict(loaded_data.provenance(), "data_provenance.json")
        try:
            return _log_inputs(tracker_or_mlflow, loaded_data, spec, run_id, context)
        except Exception as exc:  # provenance must not stop training; the dict above is kept
            print(
                f"[jsweep] warning: could not log the dataset input to MLflow ({type(exc).__name__}: {exc})", flush=True
            )
            return None
    return _log_inputs(tracker_or_mlflow, loaded_data, spec, run_id, context)


def _log_inputs(tracker_or_mlflow: Any, loaded_data: Any, spec: Any, run_id: str | None, context: str) -> Any:
    # the constructor's own module: mlflow.data sets its from_* names at import time, out of a type checker's sight
    from mlflow.data.pandas_dataset import from_pandas

    ds_spec = getattr(spec, "dataset", spec)
    data = loaded_data
    src = data.source
    base_tags = {
        "jsweep.digest": data.digest,
        "jsweep.n": len(data.examples),
        "jsweep.records": data.records,
        "jsweep.source_kind": src.kind,
        "jsweep.source": src.describe(),
        "jsweep.revision": src.revision or ("main" if src.kind == "hub" else None),
        "jsweep.read": data.report.read,
        "jsweep.dropped": sum(data.report.dropped.values()),
        "jsweep.dropped_by_reason": json.dumps(data.report.dropped, ensure_ascii=False)
        if data.report.dropped
        else None,
        "jsweep.license": getattr(ds_spec, "license", "") or None,
        "jsweep.subset": (f"n={ds_spec.n} seed={ds_spec.seed}" if getattr(ds_spec, "n", None) else None),
        "jsweep.budget": getattr(ds_spec, "budget", None),
    }
    frame = records_frame(data.examples)
    dataset = from_pandas(
        frame, source=dataset_source(src, ds_spec), name=data.name or ds_spec.name, digest=data.digest[:DIGEST_CHARS]
    )
    _log(tracker_or_mlflow, dataset, context, base_tags, run_id)

    if data.components:
        from jsweep.data.records import digest_examples

        for name, comp in data.components.items():
            part = [ex for ex in data.examples if ex.meta.get("component") == name]
            digest = digest_examples(part)
            comp_src = src.parts[name]
            comp_ds = from_pandas(
                records_frame(part),
                source=dataset_source(comp_src),
                name=f"{data.name or ds_spec.name}/{name}",
                digest=digest[:DIGEST_CHARS],
            )
            _log(
                tracker_or_mlflow,
                comp_ds,
                f"{context}_component",
                {
                    "jsweep.digest": digest,
                    "jsweep.n": len(part),
                    "jsweep.available": comp.get("available"),
                    "jsweep.share": comp.get("share"),
                    "jsweep.weight": comp.get("weight"),
                    "jsweep.upsample": comp.get("upsample"),
                    "jsweep.source": comp_src.describe(),
                    "jsweep.source_kind": comp_src.kind,
                    "jsweep.source_digest": comp.get("source_digest"),
                    "jsweep.license": comp.get("license") or None,
                    "jsweep.mixture": data.name or ds_spec.name,
                },
                run_id,
            )
    return dataset
