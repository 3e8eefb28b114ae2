"""Every option `sftkit train` accepts is honoured or refused (docs/contracts.md §2; config/options.py,
config/checks.py).

The walk over the parser's fields fails when TRL or transformers adds a field that no table places, so an upgrade
cannot bring an option that is accepted and ignored.
"""

from __future__ import annotations

import dataclasses

import pytest

from sftkit.config.fields import CONFIG_CLASSES, DataArguments, ModelArguments, SftkitConfig
from sftkit.config.options import ALIASES, HONOURED, REFUSED
from sftkit.config.parse import defaults
from sftkit.config.plan import plan_run
from sftkit.errors import SftkitError

BASE = ["model_name_or_path=some/model", "train_files=[train.parquet]"]


def plan(*overrides: str, recipe=None):
    return plan_run(recipe, [*BASE, *overrides], environ={}, world_size=1)


def own_fields() -> set[str]:
    """sftkit's fields: ModelArguments, DataArguments and those SftkitConfig declares itself."""
    own = {f.name for cls in (ModelArguments, DataArguments) for f in dataclasses.fields(cls)}
    return own | set(SftkitConfig.__dict__.get("__annotations__", {}))


def all_fields() -> set[str]:
    return {f.name for cls in CONFIG_CLASSES for f in dataclasses.fields(cls) if f.init}


def test_every_field_of_the_parser_is_honoured_aliased_or_refused():
    own, inherited = own_fields(), all_fields() - own_fields()
    tables = {"honoured": HONOURED - own, "aliases": set(ALIASES), "refused": set(REFUSED)}
    placed = [name for table in tables.values() for name in table]
    assert len(placed) == len(set(placed)), "a field sits in two tables"
    assert sorted(inherited - set(placed)) == [], "inherited fields in no table: honour or refuse them"
    assert sorted(set(placed) - all_fields()) == [], "tables name fields the parser does not have"
    assert all(alias.target in own | HONOURED for alias in ALIASES.values())


def non_default(name: str):
    """A value for the field other than its default, as a user would type it."""
    special = {
        "logging_strategy": "epoch",
        "include_num_input_tokens_seen": "all",
        "hub_strategy": "end",
        "loss_type": "dft",
        "packing_strategy": "wrapped",
        "debug": "underflow_overflow",
        "accelerator_config": '{"split_batches": true}',
        "fsdp_config": '{"min_num_params": 1}',
        "liger_kernel_config": '{"rope": true}',
        "model_init_kwargs": '{"dtype": "float32"}',
        "dataset_kwargs": '{"skip_prepare_dataset": true}',
        "parallelism_config": "dp_shard_size=2",
        "include_for_metrics": "inputs",
        "label_names": "labels",
        "pad_to_multiple_of": "8",
        "fsdp": "full_shard",
        "deepspeed": "ds.json",
    }
    if name in special:
        return special[name]
    default = defaults()[name]
    if isinstance(default, bool) or default is None and name not in ("hub_model_id", "hub_token"):
        return "false" if default is True else "true"
    if isinstance(default, int | float):
        return str(default + 3)
    return "x"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_option_stops_before_any_work_and_names_what_to_use(name):
    value = non_default(name)
    with pytest.raises(SftkitError) as err:
        plan(f"{name}={value}")
    message = str(err.value)
    assert name in message
    if "not supported by sftkit" in message:  # refused by the table (others by transformers' own validation)
        assert REFUSED[name].instead in message and "command line" in message


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_option_at_its_default_is_accepted(name):
    default = defaults()[name]
    if default is None or isinstance(default, dict | list):
        pytest.skip("no way to type None/empty on a command line other than leaving it out")
    value = getattr(default, "value", default)
    plan(f"{name}={str(value).lower() if isinstance(value, bool) else value}")


# ---- aliases: TRL habits with an sftkit meaning ----------------------------------------------------------------
@pytest.mark.parametrize(
    "token, field, value",
    [
        ("save_total_limit=3", "max_ckpt_to_keep", 3),
        ("packing=true", "use_remove_padding", True),
        ("padding_free=true", "use_remove_padding", True),
        ("packing=false", "use_remove_padding", False),
        ("use_liger_kernel=false", "use_liger", False),
        ("project=my-project", "project_name", "my-project"),
        ("truncation_mode=keep_end", "truncation", "left"),
        ("truncation_mode=keep_start", "truncation", "right"),
    ],
)
def test_an_alias_lands_on_the_sftkit_field_and_the_config_says_where_from(token, field, value):
    p = plan(token)
    assert p.to_dict()[field] == value
    assert token.partition("=")[0] in p.sources[field]


def test_packing_makes_batches_padding_free():
    assert plan("packing=true").padding_free and not plan().padding_free


def test_an_alias_and_its_sftkit_field_that_disagree_are_an_error():
    with pytest.raises(SftkitError, match="save_total_limit.*max_ckpt_to_keep.*one setting"):
        plan("save_total_limit=3", "trainer.max_ckpt_to_keep=2")
    assert plan("save_total_limit=2", "trainer.max_ckpt_to_keep=2").train.max_ckpt_to_keep == 2


@pytest.mark.parametrize(
    "recipe_line, token, field, value",
    [
        ("max_ckpt_to_keep: 2", "save_total_limit=3", "max_ckpt_to_keep", 3),
        ("save_total_limit: 3", "trainer.max_ckpt_to_keep=2", "max_ckpt_to_keep", 2),
        ("logger: [console, wandb]", "report_to=none", "logger", ["none"]),
        ("logger: [console]", "report_to=tensorboard", "logger", ["console", "tensorboard"]),
        ("report_to: tensorboard", "trainer.logger=console", "logger", ["console"]),
        ("eval_steps: 5", "eval_strategy=no", "eval_steps", None),
        ("eval_strategy: 'no'", "eval_steps=5", "eval_steps", 5),
        ("eval_strategy: 'no'", "val_files=[w.parquet]", "val_files", ["w.parquet"]),
        ("save_strategy: 'no'", "save_steps=1", "save_steps", 1),
        ("save_steps: 5", "save_strategy=no", "save_steps", 0),
    ],
)
def test_the_command_line_overrides_the_recipe_across_the_two_spellings_of_a_setting(
    tmp_path, recipe_line, token, field, value
):
    """A TRL spelling on the command line overrides the recipe's sftkit key, and the other way round (they said
    'one setting; keep one'): command line > environment > recipe holds for the setting, whatever its name."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"val_files: [v.parquet]\n{recipe_line}\n")
    assert plan(token, recipe=str(recipe)).to_dict()[field] == value


def test_a_later_save_steps_over_a_recipe_s_save_strategy_no_is_printed_as_what_runs(tmp_path, capsys):
    """The printed config says what runs and why: save_strategy 'steps' from the command line's save_steps (it
    said 'no', attributed to the recipe line, while saving followed save_steps), and save_steps=1 printed 1."""
    from sftkit.config.show import show_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("save_strategy: 'no'\n")
    show_config(plan("save_steps=1", recipe=str(recipe)))
    said = capsys.readouterr().out
    assert "save_strategy = 'steps'   [command line, as save_steps]" in said
    assert "save_steps = 1   [command line]" in said and "save_steps: 1 " in said
    show_config(plan("save_steps=0.25"))
    assert "save_steps = 0.25   [command line]" in capsys.readouterr().out  # a fraction of the run stays one


def test_report_to_is_the_logger():
    p = plan("report_to=tensorboard")
    assert p.train.logger == ["console", "tensorboard"] and p.trainer_args.report_to == ["tensorboard"]
    assert plan("report_to=none").train.logger == ["none"]
    with pytest.raises(SftkitError, match="report_to.*trainer.logger.*one setting"):
        plan("report_to=wandb", "trainer.logger=console")


def test_readme_data_keys_are_accepted():
    p = plan("data.cache_dir=/tmp/c", "data.rebuild_cache=true", "data.strict=true", "data.metadata_file=m.jsonl")
    assert (p.data.cache_dir, p.data.rebuild_cache, p.data.strict, p.data.metadata_file) == (
        "/tmp/c", True, True, "m.jsonl"
    )  # fmt: skip
    assert plan("model.lora_dropout=0.1", "model.lora_rank=4").model.lora_dropout == 0.1


# ---- honoured inherited options, with their sftkit meaning ------------------------------------------------------
def test_gradient_accumulation_must_agree_with_the_global_batch():
    assert plan("gradient_accumulation_steps=4", "per_device_train_batch_size=2").global_batch == 8
    assert plan("gradient_accumulation_steps=2", "train_batch_size=8", "per_device_train_batch_size=4").grad_accum == 2
    with pytest.raises(SftkitError, match="gradient_accumulation_steps=4.*train_batch_size=16.*derives 2"):
        plan("gradient_accumulation_steps=4", "train_batch_size=16", "per_device_train_batch_size=8")


def test_save_and_eval_strategies():
    p = plan("save_strategy=no")
    assert p.train.save_steps == 0 and p.train.save_strategy.value == "no"
    assert p.sources["save_steps"] == "command line, as save_strategy=no"
    assert plan("report_to=tensorboard").sources["logger"] == "command line, as report_to"
    with pytest.raises(SftkitError, match="save_strategy='no'.*save_steps=3.*contradict"):
        plan("save_strategy=no", "save_steps=3")
    p = plan("eval_strategy=no", "val_files=[v.parquet]")
    assert p.data.val_files == [] and p.train.eval_steps is None
    assert plan("eval_steps=5").train.eval_strategy.value == "steps"  # the printed config says what runs
    for token, match in [("save_strategy=epoch", "save_steps"), ("eval_strategy=epoch", "eval_steps")]:
        with pytest.raises(SftkitError, match=match):
            plan(token)
    with pytest.raises(SftkitError, match="contradict"):
        plan("eval_strategy=no", "eval_steps=5")


@pytest.mark.parametrize("token", ["learning_rate=-1", "optim.lr=-1e-5", "weight_decay=-0.1", "warmup_steps=-2"])
def test_negative_rates_are_refused_before_any_work(token):
    """torch refuses a negative learning rate or weight decay only when it builds the optimizer, after the data is
    tokenized and the model loaded; a negative warm-up counted nothing."""
    with pytest.raises(SftkitError, match=r"=-.* \(command line\) must be >= 0"):
        plan(token)


def test_fp16_without_a_gpu_is_refused():
    with pytest.raises(SftkitError, match="fp16=true.*needs a GPU"):
        plan("fp16=true")


def test_activation_offloading_without_a_gpu_is_refused():
    with pytest.raises(SftkitError, match="activation_offloading=true.*needs a GPU"):
        plan("activation_offloading=true")


def test_a_torch_compile_backend_accelerate_does_not_know_is_refused_at_once():
    with pytest.raises(SftkitError, match="torch_compile_backend='foo'.*inductor"):
        plan("torch_compile_backend=foo")
    assert plan("torch_compile_backend=aot_eager").train.torch_compile_backend == "aot_eager"


def test_optim_args_the_optimizer_does_not_read_are_refused():
    with pytest.raises(SftkitError, match="optim_args='weight_decouple=True'.*not read by optim='adamw_torch_fused'"):
        plan("optim=adamw_torch_fused", "optim_args=weight_decouple=True")
    with pytest.raises(SftkitError, match="optim_args='momentum=0.9,nesterv=true'.*: nesterv not read by optim='sgd'"):
        plan("optim=sgd", "optim_args=momentum=0.9,nesterv=true")  # a typo next to a key SGD reads
    assert plan("optim=sgd", "optim_args=momentum=0.9,nesterov=true").train.optim_args
    with pytest.raises(SftkitError, match=r"optim_args='betas=\(0.9,0.95\)'.*key=value,key=value"):
        plan("optim_args=betas=(0.9,0.95)")


def test_optim_args_the_optimizer_reads_are_accepted(monkeypatch):
    """No optimizer that reads optim_args is installed here (they need bitsandbytes, galore, schedulefree ...):
    transformers' builder is replaced by one that reads them, as those do."""
    from transformers import Trainer

    def builder(args, model=None):
        from torch.optim import AdamW

        return AdamW, {
            "lr": args.learning_rate,
            **dict(kv.split("=") for kv in (args.optim_args or "").split(",") if kv),
        }

    monkeypatch.setattr(Trainer, "get_optimizer_cls_and_kwargs", staticmethod(builder))
    assert plan("optim_args=alpha=5").train.optim_args == "alpha=5"


@pytest.mark.parametrize(
    "tokens, match",
    [
        (["lr_scheduler_type=reduce_lr_on_plateau"], "validation metrics"),
        (["lr_scheduler_type=cosine_with_min_lr"], "min_lr"),
        (["optim=adamw_bnb_8bit"], "bitsandbytes"),
        (["optim=schedule_free_adamw"], "schedulefree"),
        (["attn_implementation=foo"], "not an attention kernel.*sdpa"),
        (["model.lora_dropout=1.5"], r"lora_dropout=1.5.*\[0, 1\)"),
        (["push_to_hub=true"], "sftkit export"),
        (["load_best_model_at_end=true"], "metrics.jsonl"),
        (["completion_only_loss=false"], "never the prompt"),
        (["assistant_only_loss=true"], "labels contract"),
        (["dataloader_drop_last=true"], "every example"),
    ],
)
def test_options_that_would_fail_late_fail_at_once(tokens, match):
    with pytest.raises(SftkitError, match=match):
        plan(*tokens)


def test_cosine_with_min_lr_with_its_kwargs_is_accepted():
    p = plan("lr_scheduler_type=cosine_with_min_lr", 'lr_scheduler_kwargs={"min_lr_rate": 0.1}')
    assert p.train.lr_scheduler_kwargs == {"min_lr_rate": 0.1}


def test_explicit_ddp_find_unused_parameters_is_kept():
    assert plan().trainer_args.ddp_find_unused_parameters is False
    assert plan("ddp_find_unused_parameters=true").trainer_args.ddp_find_unused_parameters is True


def test_data_seed_orders_the_data_and_seed_alone_does_not_change_it():
    import numpy as np

    from sftkit.training.loader import StepSampler

    lengths = np.arange(64) % 13 + 5

    def order(*tokens):
        p = plan("train_batch_size=8", "per_device_train_batch_size=8", *tokens)
        t = p.train
        sampler = StepSampler(lengths, p.global_batch, t.data_seed if t.data_seed is not None else t.seed,
                              p.order, 0, 1)  # fmt: skip
        return [list(step) for step in sampler]

    assert order("seed=1", "data_seed=5") == order("seed=2", "data_seed=5")
    assert order("data_seed=5") != order("data_seed=6")


def test_upstream_check_errors_are_raised_by_every_rank_alike_and_printed_once():
    """Plan-time checks run on every rank after the process group exists: shared errors are printed by rank 0 only
    (each rank printed its own copy)."""
    with pytest.raises(SftkitError) as info:
        plan("optim_args=foo=1")
    assert info.value.shared
