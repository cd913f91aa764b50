"""A resumed cell's train/final_loss is the run-wide mean training loss (jsweep.job.sft.run_mean_loss),
as if the run had not been interrupted (a README promise; split from tests/integration/test_promises.py)."""

from __future__ import annotations

import pytest

from jsweep.job.sft import run_mean_loss


def test_final_loss_of_an_uninterrupted_run_is_the_trainers_own():
    assert run_mean_loss([{"loss": 9.0, "step": 1}], 0, 6, 4.25) == 4.25


def test_final_loss_of_a_resumed_run_averages_every_step_of_the_run():
    # Steps 1..6 with losses 6,5,4,3,2,1 (mean 3.5); resumed at checkpoint-2: this attempt's mean is 2.5.
    history = [{"loss": 6.0, "step": 1}, {"loss": 5.0, "step": 2}, {"eval_loss": 7.0, "step": 2}]
    assert run_mean_loss(history, 2, 6, 2.5) == pytest.approx(3.5, abs=1e-12)


def test_final_loss_weights_each_logged_loss_by_its_logging_interval():
    # logging_steps=2: step 2 logs the mean of steps 1-2 (5.5), step 4 of steps 3-4 (3.5); resumed at 4.
    history = [{"loss": 5.5, "step": 2}, {"loss": 3.5, "step": 4}, {"train_runtime": 1.0, "step": 4}]
    assert run_mean_loss(history, 4, 6, 1.5) == pytest.approx(3.5, abs=1e-12)
    # checkpoint at 3 (between two logs): step 3's loss is unknown, the mean is over steps 1-2 and 4-6
    assert run_mean_loss(history[:1], 3, 6, 2.0) == pytest.approx((5.5 * 2 + 2.0 * 3) / 5, abs=1e-12)
