"""The scheduler with a fake GPU inventory: disjoint assignment, backfill, failures release GPUs."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jsweep.scheduler import Job, Scheduler, discover_gpus


@dataclass
class FakeProc:
    """Finishes after ``ticks`` polls with ``rc``."""

    ticks: int
    rc: int = 0
    polls: int = 0

    def poll(self):
        self.polls += 1
        return self.rc if self.polls > self.ticks else None


@dataclass
class Recorder:
    running: dict[str, list[int]] = field(default_factory=dict)
    starts: list[tuple[str, list[int], set[int]]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    peak: int = 0

    def job(self, key: str, gpus: int, ticks: int, rc: int = 0) -> Job:
        def start(ids):
            busy = {g for v in self.running.values() for g in v}
            self.starts.append((key, list(ids), busy))
            self.running[key] = list(ids)
            self.peak = max(self.peak, len(self.running))
            return FakeProc(ticks, rc)

        return Job(key, gpus, start)

    def finish(self, fin):
        self.running.pop(fin.job.key)
        self.order.append(fin.job.key)


def test_disjoint_gpu_sets_and_packing():
    rec = Recorder()
    jobs = [rec.job(f"c{i}", 1, ticks=3) for i in range(4)]
    Scheduler([0, 1], poll_interval=0).run(jobs, on_finish=rec.finish)
    assert len(rec.starts) == 4
    for _key, ids, busy in rec.starts:
        assert len(ids) == 1 and not set(ids) & busy  # never a GPU that is in use
    first_two = {tuple(ids) for _, ids, _ in rec.starts[:2]}
    assert first_two == {(0,), (1,)}  # two cells side by side on two GPUs


def test_backfill_starts_the_next_cell_when_gpus_free_up():
    rec = Recorder()
    # A 2-GPU cell waits while two 1-GPU cells run; a later 1-GPU cell backfills a freed GPU first.
    jobs = [rec.job("a", 1, ticks=2), rec.job("b", 1, ticks=8), rec.job("big", 2, ticks=2), rec.job("c", 1, ticks=2)]
    Scheduler([0, 1], poll_interval=0).run(jobs, on_finish=rec.finish)
    keys = [k for k, _, _ in rec.starts]
    assert keys.index("c") < keys.index("big")  # backfill: c used the GPU a freed
    big = next(ids for k, ids, _ in rec.starts if k == "big")
    assert sorted(big) == [0, 1]


def test_a_failing_cell_releases_its_gpus():
    rec = Recorder()
    jobs = [rec.job("bad", 2, ticks=1, rc=1), rec.job("next", 2, ticks=1)]
    done = Scheduler([0, 1], poll_interval=0).run(jobs, on_finish=rec.finish)
    assert [f.returncode for f in done] == [1, 0]
    assert sorted(next(ids for k, ids, _ in rec.starts if k == "next")) == [0, 1]


@dataclass
class TwoStageProc(FakeProc):
    """A multi-GPU cell: trains on all its GPUs for ``train_ticks`` polls, then evaluates on the first."""

    train_ticks: int = 0

    def still_needs(self, ids):
        return ids if self.polls <= self.train_ticks else ids[:1]


def test_a_cell_that_evaluates_on_one_gpu_frees_the_others_for_the_next_cell():
    rec = Recorder()
    two = rec.job("ddp", 2, ticks=10)
    two.start = lambda ids, start=two.start: (start(ids), TwoStageProc(10, train_ticks=3))[1]
    jobs = [two, rec.job("next", 1, ticks=2), rec.job("last", 2, ticks=1)]
    sched = Scheduler([0, 1], poll_interval=0)
    sched.run(jobs, on_finish=rec.finish)
    (_, ids, _busy), (key, next_ids, next_busy), (_, last_ids, last_busy) = rec.starts
    assert ids == [0, 1] and key == "next"
    assert next_ids == [1] and next_busy == {0, 1}  # started on GPU 1 while the ddp cell still ran (on GPU 0)
    assert rec.order[0] == "next"  # ...and ended before it
    assert last_ids == [0, 1] and last_busy == set()  # GPU 0 came back when the ddp cell ended, never twice
    assert sched.free == [0, 1]


def test_cpu_slots_limit_concurrency():
    rec = Recorder()
    jobs = [rec.job(f"c{i}", 0, ticks=2) for i in range(5)]
    Scheduler([], cpu_slots=2, poll_interval=0).run(jobs, on_finish=rec.finish)
    assert all(ids == [] for _, ids, _ in rec.starts)
    assert rec.peak == 2 and len(rec.order) == 5  # two at a time, all five ran


def test_a_retry_returned_by_on_finish_runs_next():
    rec = Recorder()
    retried = []

    def finish(fin):
        rec.finish(fin)
        if fin.job.key == "oom" and not retried:
            retried.append(True)
            return rec.job("oom", 1, ticks=1)
        return None

    Scheduler([0], poll_interval=0).run(
        [rec.job("oom", 1, ticks=1, rc=1), rec.job("other", 1, ticks=1)], on_finish=finish
    )
    assert rec.order == ["oom", "oom", "other"]


def test_more_gpus_than_exist_is_an_error():
    with pytest.raises(ValueError, match="needs 4 GPUs but only 2 exist"):
        Scheduler([0, 1]).run([Job("x", 4, lambda ids: FakeProc(0))])


def test_discover_gpus_from_settings_and_environment(monkeypatch):
    assert discover_gpus([0, 1]) == [0, 1]
    assert discover_gpus("2,3") == [2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert discover_gpus("auto") == [4, 5]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert discover_gpus("auto") == []


def test_a_multi_gpu_cell_gives_back_all_but_its_first_gpu_once_its_eval_stage_runs(tmp_path):
    import time

    from jsweep.files import write_json
    from jsweep.sweep import eval_stage_gpus

    since = time.time()
    assert eval_stage_gpus(tmp_path, [2, 3], since) == [2, 3]  # no status yet
    write_json(tmp_path / "status.json", {"status": "RUNNING", "stage": "train", "time": since + 1})
    assert eval_stage_gpus(tmp_path, [2, 3], since) == [2, 3]  # training on both
    write_json(tmp_path / "status.json", {"status": "TRAINED", "time": since + 2})
    assert eval_stage_gpus(tmp_path, [2, 3], since) == [2, 3]  # ranks may still be exiting
    write_json(tmp_path / "status.json", {"status": "RUNNING", "stage": "eval", "time": since + 3})
    assert eval_stage_gpus(tmp_path, [2, 3], since) == [2]  # the eval process runs on the first
    assert eval_stage_gpus(tmp_path, [2, 3], since + 10) == [2, 3]  # a stale status of an earlier attempt
