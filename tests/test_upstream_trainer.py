"""Behavioural pins on transformers' training loop and TRL's loss, as sftkit's trainer (training/trainer.py) relies on
them: a minor release that changes one of these must fail a test here, not a training run.

A recording subclass of a plain transformers `Trainer` overrides the same hooks `SftkitTrainer` does, on a one-layer
model over sftkit's own step loader (training/loader.py), and notes in order what the loop does with them: one run
of 2 epochs x 3 steps that saves at step 4 when a callback asks (as callbacks.RunSchedule does), then a resume from
that save. These replace pins on the upstream source text (issue 22).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from sftkit.training import loader

EXAMPLES, STEP, EPOCHS = 6, 2, 2  # 3 optimizer steps per epoch
SAVE_AT, SKIP_AT = 4, 2  # the callback asks for a save after step 4; step 2's gradients are dropped


class Sampler(loader.StepSampler):
    """sftkit's step sampler, noting the epoch it is told and the epoch it iterates in."""

    def set_epoch(self, epoch: int) -> None:
        self.events.append(("set_epoch", epoch))
        super().set_epoch(epoch)

    def __iter__(self):
        self.events.append(("iterate", self.epoch))
        return super().__iter__()


class Recording(Trainer):
    """Overrides the hooks SftkitTrainer overrides (same signatures) and records each call."""

    def __init__(self, *args, events: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = events
        self.fetched = None  # (step batches, num_items) of the last get_batch_samples

    def get_train_dataloader(self):
        sampler = Sampler(np.ones(len(self.train_dataset), int), STEP, 0, "shuffled", 0, 1)
        sampler.events = self.events
        return loader.StepLoader(loader.Examples(self.train_dataset), batch_sampler=sampler, collate_fn=lambda b: b)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches = list(itertools.islice(epoch_iterator, num_batches))
        self.fetched = batches, torch.tensor(float(sum(b.trained_tokens for b in batches)))
        self.events.append(("fetch", num_batches, [[ex["input_ids"][0] for ex in b.examples] for b in batches]))
        return self.fetched

    def training_step(self, model, inputs, num_items_in_batch=None):
        batches, items = self.fetched
        self.events.append(("train", any(inputs is b for b in batches), num_items_in_batch is items))
        x = torch.tensor([[float(ex["input_ids"][0])] * 4 for ex in inputs.examples])
        loss = model(x).pow(2).mean()
        self.accelerator.backward(loss)
        return loss.detach()

    def _get_grad_norm(self, model, grad_norm=None):
        step = self.state.global_step + 1
        has_grads = all(p.grad is not None for p in model.parameters())
        self.events.append(("grad_norm", step, has_grads, weights(model)))
        if step == SKIP_AT:  # as nonfinite.check_step skips a step
            model.zero_grad(set_to_none=True)
        return super()._get_grad_norm(model, grad_norm)

    def log(self, logs, start_time=None):
        self.events.append(("log", self.state.global_step))
        super().log(logs, start_time)

    def evaluate(self, *args, **kwargs):
        self.events.append(("evaluate", self.state.global_step))
        return {"eval_loss": 0.0}

    def _save_checkpoint(self, model, trial=None):
        self.events.append(("save", self.state.global_step))
        folder = Path(self.args.output_dir) / f"global_step_{self.state.global_step}"  # sftkit's layout
        folder.mkdir()
        self.state.save_to_json(str(folder / "trainer_state.json"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        self.events.append(("load_model", resume_from_checkpoint))

    def _load_optimizer_and_scheduler(self, checkpoint):
        self.events.append(("load_optimizer", checkpoint))

    def _load_rng_state(self, checkpoint):
        self.events.append(("load_rng", checkpoint))


class Schedule(TrainerCallback):
    """Asks for validation and a save at SAVE_AT (callbacks.RunSchedule's way); notes on_save and the weights."""

    def __init__(self, events: list):
        self.events = events

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.events.append(("step_end", state.global_step, weights(model)))
        if state.global_step == SAVE_AT:
            control.should_evaluate = control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.events.append(("on_save", state.global_step))


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def train(output_dir: Path, resume: str | None = None) -> list:
    events = []
    data = Dataset.from_dict({"input_ids": [[i] for i in range(EXAMPLES)], "labels": [[i] for i in range(EXAMPLES)]})
    args = TrainingArguments(
        output_dir=str(output_dir), use_cpu=True, report_to="none", num_train_epochs=EPOCHS, learning_rate=0.1,
        per_device_train_batch_size=STEP, logging_steps=1, save_strategy="no", eval_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    trainer = Recording(model=model, args=args, train_dataset=data, events=events, callbacks=[Schedule(events)])
    trainer.train(resume_from_checkpoint=resume)
    return events


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("upstream-trainer")
    fresh = train(out)
    folder = str(out / f"global_step_{SAVE_AT}")
    return {"fresh": fresh, "resumed": train(out, folder), "folder": folder}


def named(events: list, *names: str) -> list:
    return [e for e in events if e[0] in names]


def test_one_batch_fetch_per_optimizer_step_feeds_every_training_step(runs):
    """SftkitTrainer.get_batch_samples returns one step batch and the step's trained tokens (gradient accumulation
    is 1 for transformers); training_step must get that very batch and that very count."""
    events = named(runs["fresh"], "fetch", "train", "grad_norm")
    assert [e[0] for e in events] == ["fetch", "train", "grad_norm"] * EPOCHS * 3
    assert all(e[1] == 1 for e in named(events, "fetch"))
    assert all(e == ("train", True, True) for e in named(events, "train"))


def test_the_step_loader_learns_the_epoch_before_it_is_iterated(runs):
    """StepLoader.set_epoch gives the sampler the epoch that seeds its order (loader.py)."""
    told = [("set_epoch", 0), ("iterate", 0), ("set_epoch", 1), ("iterate", 1)]
    assert named(runs["fresh"], "set_epoch", "iterate") == told
    epochs = named(runs["fresh"], "fetch")
    assert epochs[:3] != epochs[3:]  # the order did change with the epoch


def test_the_grad_norm_hook_runs_before_the_optimizer_step_on_every_step(runs):
    """nonfinite.check_step runs inside _get_grad_norm: the gradients are there, the weights not yet stepped, and
    dropping the gradients there skips the step (the weights stay as they were)."""
    events = runs["fresh"]
    norms = named(events, "grad_norm")
    assert [e[1] for e in norms] == list(range(1, EPOCHS * 3 + 1)) and all(e[2] for e in norms)
    ends = named(events, "step_end")
    before = [torch.equal(n[3], e[2]) for n, e in zip(norms, ends)]  # weights unchanged over the step
    assert before == [step == SKIP_AT for step in range(1, EPOCHS * 3 + 1)]
    assert all(torch.equal(n[3], e[2]) for n, e in zip(norms[1:], ends))  # _get_grad_norm saw last step's weights


def test_a_save_asked_by_a_callback_comes_after_the_steps_log_and_validation(runs):
    """_save_checkpoint writes global_step_N after that step's metrics are logged (so every checkpoint's step is
    in metrics.jsonl), then on_save fires."""
    after = runs["fresh"][runs["fresh"].index(("log", SAVE_AT)) :]
    order = [e[0] for e in named(after, "log", "evaluate", "save", "on_save", "fetch")[:5]]
    assert order == ["log", "evaluate", "save", "on_save", "fetch"]  # all before the next step
    assert len(named(runs["fresh"], "save")) == 1  # only when asked (save_strategy=no)


def test_resume_loads_through_our_hooks_from_our_folder(runs):
    """transformers reads trainer_state.json from the global_step_N folder and hands that folder to the three
    loading hooks SftkitTrainer overrides."""
    folder = runs["folder"]
    loads = named(runs["resumed"], "load_model", "load_optimizer", "load_rng")
    assert loads == [("load_model", folder), ("load_optimizer", folder), ("load_rng", folder)]
    assert [e[1] for e in named(runs["resumed"], "grad_norm")] == list(range(SAVE_AT + 1, EPOCHS * 3 + 1))


def test_resume_skips_whole_step_batches_in_the_epochs_order(runs):
    """Exact resume: the resumed run fetches exactly the step batches the uninterrupted run fetched after the save,
    the sampler told the resumed epoch through transformers' skip wrapper."""
    fresh, resumed = named(runs["fresh"], "fetch"), named(runs["resumed"], "fetch")
    assert resumed == fresh[SAVE_AT:]
    assert named(runs["resumed"], "set_epoch", "iterate") == [("set_epoch", 1), ("iterate", 1)]


def test_trl_loss_is_the_token_sum_over_num_items_times_the_processes(plain_tokenizer, tmp_path, monkeypatch):
    """SftkitTrainer passes the trained tokens of the whole step on all ranks as num_items_in_batch, and its
    validation loop undoes the x processes (DDP averages the gradients): TRL's loss must be the sum of the
    token losses / num_items_in_batch x the number of processes."""
    from accelerate import Accelerator
    from torch.nn.functional import cross_entropy
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    model = Qwen2ForCausalLM(cfg).float()
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", gradient_checkpointing=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": [[1, 2, 3]]}),
                         processing_class=plain_tokenizer)  # fmt: skip
    ids = torch.randint(1, 97, (2, 6))
    labels = ids.clone()
    labels[:, :3] = -100
    inputs = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, :-1]
        token_sum = cross_entropy(logits.reshape(-1, 97), labels[:, 1:].reshape(-1), reduction="sum")
        one = trainer.compute_loss(model, dict(inputs), num_items_in_batch=torch.tensor(10))
        monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: 2))
        two = trainer.compute_loss(model, dict(inputs), num_items_in_batch=torch.tensor(10))
    torch.testing.assert_close(one, token_sum / 10)
    torch.testing.assert_close(two, 2 * token_sum / 10)
