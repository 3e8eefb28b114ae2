"""When a run saves, validates and stops (the Trainer's own save/eval schedule is off: see config/plan.py).

- `global_step_N` every `save_steps` optimizer steps (verl: trainer.save_freq), and `global_step_0` first with
  `save_initial`; `global_step_final` is written by train.py at the end.
- validation every `eval_steps` (verl: trainer.test_freq) when there is a validation set.
- pre-emption (preempt.py): a signal saves `global_step_N` at the next step boundary and stops the run.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback


def every(value: float | None, max_steps: int) -> int:
    """A step interval: N, or a fraction of the run's steps (transformers' convention for values below 1)."""
    if not value or value <= 0:
        return 0
    return int(value) if value >= 1 else max(1, math.ceil(value * max_steps))


class RunSchedule(TrainerCallback):
    def __init__(self, trainer, has_validation: bool):
        self.trainer = trainer
        self.has_validation = has_validation
        self.stop = trainer.stop  # installed until the run's last file is written (train.py restores it)

    def on_train_begin(self, args, state, control, **kwargs):
        self.stop.install()
        if self.trainer.plan.train.save_initial and state.global_step == 0:
            self.trainer.save_checkpoint("global_step_0")

    def on_step_end(self, args, state, control, **kwargs):
        # Saving is asked here and done by the Trainer after this step's logging and validation
        # (SftkitTrainer._save_checkpoint), so a checkpoint's step is always in metrics.jsonl.
        step, plan = state.global_step, self.trainer.plan
        evaluate = every(plan.train.eval_steps, state.max_steps)
        if self.has_validation and evaluate and step % evaluate == 0:
            # kept on a stop too: a run stopped here must validate as an uninterrupted one does (the validation
            # draws from the RNG, so skipping it would change the resumed run's dropout masks)
            control.should_evaluate = True
        if self.stop.agreed(args.device):
            self.trainer.preempted = True
            control.should_save = control.should_training_stop = True
            return control
        save = every(plan.train.save_steps, state.max_steps)
        if save and step % save == 0 and step < state.max_steps:  # the last step gets global_step_final
            control.should_save = True
        return control
