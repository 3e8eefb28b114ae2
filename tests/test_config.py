"""Configuration (docs/contracts.md §2): verl keys, override forms, recipe -> env -> CLI precedence, batch arithmetic,
errors, every shipped recipe through the real parser, and `--help` of every subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest

from _plans import BASE, run
from sftkit.config.plan import plan_run as resolve
from sftkit.errors import SftkitError
from sftkit.verl.keys import ENV_VARS, IGNORED_KEYS, SPLIT_KEYS, VERL_KEYS

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if not p.stem.startswith("rounds-"))  # training

# docs/contracts.md §2, copied as written: at least these verl keys map onto our fields.
CONTRACT_VERL_KEYS = """
data.train_files, data.val_files, data.prompt_key, data.response_key, data.max_length, data.truncation,
data.micro_batch_size_per_gpu, data.train_batch_size, optim.lr, optim.weight_decay, optim.betas, optim.clip_grad,
optim.lr_warmup_steps_ratio, optim.lr_scheduler, model.partial_pretrain, model.enable_gradient_checkpointing,
model.gradient_checkpointing, model.use_flash_attention, model.use_liger, model.lora_rank, model.lora_alpha,
model.target_modules, model.trust_remote_code, trainer.total_epochs, trainer.total_training_steps,
trainer.save_freq, trainer.test_freq, trainer.logger, trainer.project_name, trainer.experiment_name,
trainer.default_local_dir, trainer.resume_from_checkpoint, trainer.seed, trainer.max_ckpt_to_keep,
use_remove_padding, ulysses_sequence_parallel_size
"""
# docs/contracts.md §2's environment variables, less NPROC_PER_NODE (the number of processes: read by the launcher
# shims).
CONTRACT_ENV_VARS = "MODEL_NAME TRAIN_FILE VAL_FILE OUTPUT_DIR BATCH_SIZE LEARNING_RATE EPOCHS MAX_LENGTH LORA_RANK"
CONTRACT_ENV_VARS += " LORA_ALPHA"

# verl key -> (value as typed, part of Resolved, field, expected value with its type, extra overrides needed)
VERL_CASES = {
    "data.train_files": ("[a.parquet,b.parquet]", "data", "train_files", ["a.parquet", "b.parquet"], []),
    "data.val_files": ("[v.parquet]", "data", "val_files", ["v.parquet"], []),
    "data.prompt_key": ("question", "data", "prompt_key", "question", []),
    "data.response_key": ("response", "data", "response_key", "response", []),
    "data.max_length": ("4096", "train", "max_length", 4096, []),
    "data.truncation": ("left", "data", "truncation", "left", []),
    "data.micro_batch_size_per_gpu": ("2", "train", "per_device_train_batch_size", 2, []),
    "data.train_batch_size": ("16", "data", "train_batch_size", 16, []),
    "data.max_token_len_per_gpu": ("8192", "data", "max_token_len_per_gpu", 8192, []),
    "data.use_dynamic_bsz": ("true", "data", "use_dynamic_bsz", True, ["data.max_token_len_per_gpu=4096"]),
    "optim.lr": ("2e-5", "train", "learning_rate", 2e-5, []),
    "optim.weight_decay": ("0.01", "train", "weight_decay", 0.01, []),
    "optim.clip_grad": ("0.5", "train", "max_grad_norm", 0.5, []),
    "optim.lr_warmup_steps_ratio": ("0.1", "train", "warmup_steps", 0.1, []),
    "optim.lr_scheduler": ("constant", "train", "lr_scheduler_type", "constant", []),
    "model.partial_pretrain": ("/models/qwen", "model", "model_name_or_path", "/models/qwen", []),
    "model.enable_gradient_checkpointing": ("true", "train", "activation_checkpointing", True, []),
    "model.gradient_checkpointing": ("true", "train", "activation_checkpointing", True, []),
    "model.use_flash_attention": ("true", "model", "use_flash_attention", True, []),
    "model.use_liger": ("true", "model", "use_liger", True, []),
    "model.lora_rank": ("32", "model", "lora_rank", 32, []),
    "model.lora_alpha": ("64", "model", "lora_alpha", 64, []),
    "model.lora_dropout": ("0.05", "model", "lora_dropout", 0.05, []),
    "model.target_modules": ("[q_proj,v_proj]", "model", "target_modules", ["q_proj", "v_proj"], []),
    "model.trust_remote_code": ("true", "train", "trust_remote_code", True, []),
    "model.merge_lora": ("true", "model", "merge_lora", True, ["model.lora_rank=8"]),
    "trainer.total_epochs": ("2", "train", "num_train_epochs", 2.0, []),
    "trainer.total_training_steps": ("100", "train", "max_steps", 100, []),
    "trainer.save_freq": ("250", "train", "save_steps", 250, []),
    "trainer.test_freq": ("50", "train", "eval_steps", 50, []),
    "trainer.logger": ("console", "train", "logger", ["console"], []),
    "trainer.project_name": ("my-project", "train", "project_name", "my-project", []),
    "trainer.experiment_name": ("run-1", "train", "run_name", "run-1", []),
    "trainer.default_local_dir": ("/ckpt/run-1", "train", "output_dir", "/ckpt/run-1", []),
    "trainer.resume_from_checkpoint": ("auto", "train", "resume_from_checkpoint", "auto", []),
    "trainer.resume_ignore_mismatch": ("true", "train", "resume_ignore_mismatch", True, []),
    "trainer.save_initial": ("true", "train", "save_initial", True, []),
    "trainer.merge_lora": ("true", "model", "merge_lora", True, ["model.lora_rank=8"]),
    "trainer.seed": ("7", "train", "seed", 7, []),
    "trainer.max_ckpt_to_keep": ("2", "train", "max_ckpt_to_keep", 2, []),
    "use_remove_padding": ("true", "data", "use_remove_padding", True, []),
    "ulysses_sequence_parallel_size": ("1", "train", "ulysses_sequence_parallel_size", 1, []),
}


def plain(value):
    """Enums (lr_scheduler_type) -> their string value."""
    return getattr(value, "value", value)


def write_recipe(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- verl keys --------------------------------------------------------------------------------------------------
def test_spec_verl_keys_are_all_mapped():
    keys = [k.strip() for k in CONTRACT_VERL_KEYS.replace("\n", " ").split(",")]
    assert len(keys) == 36
    assert sorted(set(keys) - set(VERL_KEYS)) == []


def test_every_verl_key_has_a_case_here():
    assert set(VERL_CASES) | {"optim.betas"} == set(VERL_KEYS)


@pytest.mark.parametrize("key", sorted(VERL_CASES))
def test_verl_key_lands_on_its_field_with_its_type(key):
    value, part, name, expected, extra = VERL_CASES[key]
    r = run(f"{key}={value}", *extra)
    actual = plain(getattr(getattr(r, part), name))
    assert actual == expected
    assert type(actual) is type(expected), f"{key}: {actual!r} is {type(actual).__name__}"
    assert r.sources[name] == "command line"


def test_optim_betas_sets_both_adam_betas():
    r = run("optim.betas=[0.9,0.95]")
    assert (r.train.adam_beta1, r.train.adam_beta2) == (0.9, 0.95)
    assert isinstance(r.train.adam_beta1, float) and isinstance(r.train.adam_beta2, float)
    assert r.sources["adam_beta1"] == r.sources["adam_beta2"] == "command line"
    assert run("betas=0.8,0.9").train.adam_beta2 == 0.9
    with pytest.raises(SftkitError, match="needs 2 values"):
        run("optim.betas=[0.9]")
    assert set(SPLIT_KEYS) == {"betas"}


@pytest.mark.parametrize("text, expected", [("true", True), ("True", True), ("false", False), ("False", False)])
def test_booleans(text, expected):
    r = run(f"model.use_liger={text}", f"use_remove_padding={text}", f"trainer.save_initial={text}")
    assert r.model.use_liger is expected and r.data.use_remove_padding is expected
    assert r.train.save_initial is expected


def test_bare_flag_means_true():
    assert run("--save_initial").train.save_initial is True
    assert run("--save_initial", "optim.lr=1e-4").train.learning_rate == 1e-4


def test_logger_lists_and_report_to():
    assert run("trainer.logger=console").train.report_to == []  # TrainingArguments' spelling of "none"
    r = run("trainer.logger=[console,wandb]")
    assert r.train.logger == ["console", "wandb"] and r.train.report_to == ["wandb"]
    r = run("--logger", "console", "tensorboard")
    assert r.train.logger == ["console", "tensorboard"] and r.train.report_to == ["tensorboard"]
    with pytest.raises(SftkitError, match="trainer.logger"):
        run("trainer.logger=foo")


@pytest.mark.parametrize("value", ["[a.parquet,b.parquet]", "a.parquet,b.parquet"])
def test_file_lists(value):
    assert run(f"data.train_files={value}").data.train_files == ["a.parquet", "b.parquet"]


def test_file_list_as_several_words_and_val_defaults_to_train():
    r = run("--train_files", "a.parquet", "b.parquet")
    assert r.data.train_files == ["a.parquet", "b.parquet"]
    assert r.data.val_files == ["a.parquet", "b.parquet"]  # as in the seed: VAL_FILE defaults to TRAIN_FILE


def test_ignored_verl_keys_are_accepted(capsys):
    for key in IGNORED_KEYS:
        run(f"{key}=2")
        assert key in capsys.readouterr().out


# ---- override forms ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tokens",
    [
        ["--learning_rate", "1e-5"],
        ["--learning_rate=1e-5"],
        ["learning_rate=1e-5"],
        ["--learning-rate", "1e-5"],
        ["optim.lr=1e-5"],
    ],
)
def test_override_forms(tokens):
    r = run("optim.lr=3e-4")  # a non-default start: the override must change it
    assert r.train.learning_rate == 3e-4
    r = run(*tokens)
    assert r.train.learning_rate == 1e-5 and isinstance(r.train.learning_rate, float)
    assert r.sources["learning_rate"] == "command line"


def test_mixed_forms_in_one_command_line():
    r = run("--max_length", "512", "optim.lr=2e-5", "--seed=3", "trainer.logger=console")
    assert (r.train.max_length, r.train.learning_rate, r.train.seed) == (512, 2e-5, 3)


def test_a_key_set_twice_on_the_command_line_is_an_error():
    # as in a recipe: the last one winning silently hides a typo (optim.lr is learning_rate)
    with pytest.raises(SftkitError, match="learning_rate is set twice on the command line.*optim.lr=1e-4"):
        run("optim.lr=1e-4", "--learning_rate", "2e-4")
    with pytest.raises(SftkitError, match="max_length is set twice"):
        run("max_length=10", "data.max_length=20")


def test_argument_that_is_not_an_override_is_an_error():
    with pytest.raises(SftkitError, match="'foo'"):
        run("foo")


# ---- precedence: recipe < env < CLI -----------------------------------------------------------------------------
RECIPE = """\
# Config for a test.
model_name_or_path: recipe/model
train_files: [recipe.parquet]
learning_rate: 1.0e-3
max_length: 100
per_device_train_batch_size: 2
num_train_epochs: 1
"""


def test_precedence_recipe_env_cli(tmp_path):
    recipe = write_recipe(tmp_path, RECIPE)
    env = {"LEARNING_RATE": "2e-4", "MAX_LENGTH": "200", "MODEL_NAME": "", "UNRELATED": "x"}
    r = run("optim.lr=3e-5", recipe=recipe, environ=env)
    assert r.train.learning_rate == 3e-5 and r.sources["learning_rate"] == "command line"
    assert r.train.max_length == 200 and r.sources["max_length"] == "env MAX_LENGTH"
    assert r.train.per_device_train_batch_size == 2 and r.sources["per_device_train_batch_size"] == f"{recipe}:6"
    assert r.model.model_name_or_path == "recipe/model"  # an empty variable counts as unset
    assert r.sources["model_name_or_path"] == f"{recipe}:2"
    assert r.train.num_train_epochs == 1.0
    assert "seed" not in r.sources  # defaults are not listed as set
    # recipe only
    r = run(recipe=recipe)
    assert (r.train.learning_rate, r.train.max_length) == (1e-3, 100)
    # env over recipe
    assert run(recipe=recipe, environ={"LEARNING_RATE": "2e-4"}).train.learning_rate == 2e-4


def test_recipe_values_are_typed_like_overrides(tmp_path):
    """YAML reads `1e-5` (no dot) as a string and verl keys may be used in a recipe: both still land typed."""
    recipe = write_recipe(
        tmp_path,
        "model.partial_pretrain: m\ndata.train_files: t.parquet\nlearning_rate: 1e-5\ndata.max_length: '300'\n"
        "target_modules: all-linear\nlogger: [console]\n",
    )
    r = run(recipe=recipe)
    assert r.train.learning_rate == 1e-5 and isinstance(r.train.learning_rate, float)
    assert r.train.max_length == 300 and type(r.train.max_length) is int
    assert r.data.train_files == ["t.parquet"] and r.model.target_modules == ["all-linear"]


@pytest.mark.parametrize("var", sorted(ENV_VARS))
def test_env_var_maps_to_its_field(var):
    values = {
        "MODEL_NAME": ("org/env-model", "model", "model_name_or_path", "org/env-model"),
        "TRAIN_FILE": ("env-train.parquet", "data", "train_files", ["env-train.parquet"]),
        "VAL_FILE": ("env-val.parquet", "data", "val_files", ["env-val.parquet"]),
        "OUTPUT_DIR": ("/env/out", "train", "output_dir", "/env/out"),
        "BATCH_SIZE": ("3", "train", "per_device_train_batch_size", 3),
        "LEARNING_RATE": ("2e-4", "train", "learning_rate", 2e-4),
        "EPOCHS": ("5", "train", "num_train_epochs", 5.0),
        "MAX_LENGTH": ("1024", "train", "max_length", 1024),
        "LORA_RANK": ("16", "model", "lora_rank", 16),
        "LORA_ALPHA": ("32", "model", "lora_alpha", 32),
    }
    value, part, name, expected = values[var]
    others = [token for token in BASE if not token.startswith(f"{name}=")]  # the variable alone sets the field
    r = resolve(None, others, environ={var: value})
    actual = getattr(getattr(r, part), name)
    assert actual == expected and type(actual) is type(expected)
    assert r.sources[name] == f"env {var}"
    # the command line beats the variable
    assert resolve(None, [*others, f"{name}={value}"], environ={var: value}).sources[name] == "command line"


def test_spec_env_vars_are_all_read():
    assert set(CONTRACT_ENV_VARS.split()) == set(ENV_VARS)


def test_seed_env_only_run():
    """The seed's workflow: no recipe, everything from the environment."""
    env = {"MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct", "TRAIN_FILE": "data/sft/train.parquet", "BATCH_SIZE": "4"}
    r = resolve(None, [], environ=env)
    assert r.data.val_files == ["data/sft/train.parquet"]
    assert r.train.per_device_train_batch_size == 4


# ---- errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token, suggestion",
    [
        ("optim.learning_rate=1e-5", "learning_rate"),
        ("--learnin_rate=1e-5", "learning_rate"),
        ("data.max_lenght=10", "data.max_length"),
        ("trainer.total_epoch=2", "trainer.total_epochs"),
    ],
)
def test_unknown_key_is_an_error_with_suggestions(token, suggestion):
    with pytest.raises(SftkitError) as info:
        run(token)
    message = str(info.value)
    key = token.lstrip("-").split("=")[0]
    assert repr(key) in message and "Did you mean" in message and suggestion in message


def test_unknown_key_in_recipe_names_file_and_line(tmp_path):
    recipe = write_recipe(tmp_path, "# comment\nmodel_name_or_path: m\nlearning_rat: 1.0e-5\n")
    with pytest.raises(SftkitError) as info:
        run(recipe=recipe)
    assert f"{recipe}:3" in str(info.value) and "'learning_rat'" in str(info.value)
    assert "Did you mean" in str(info.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("model_name_or_path: [unclosed\n", "does not parse"),
        ("a: b: c\n", "does not parse"),
        ("- model_name_or_path\n- train_files\n", "mapping"),
        ("just a string\n", "mapping"),
    ],
)
def test_recipe_that_does_not_parse(tmp_path, text, match):
    recipe = write_recipe(tmp_path, text)
    with pytest.raises(SftkitError, match=match) as info:
        run(recipe=recipe)
    assert str(recipe) in str(info.value)


def test_missing_recipe(tmp_path):
    with pytest.raises(SftkitError, match="not found"):
        run(recipe=tmp_path / "nope.yaml")


def test_empty_recipe_still_needs_model_and_data(tmp_path):
    recipe = write_recipe(tmp_path, "# nothing yet\n")
    with pytest.raises(SftkitError, match="no model"):
        run(recipe=recipe)


def test_missing_model_or_training_files():
    with pytest.raises(SftkitError, match="no model"):
        resolve(None, ["train_files=[t.parquet]"], environ={})
    with pytest.raises(SftkitError, match="no training data"):
        resolve(None, ["model_name_or_path=m"], environ={})


@pytest.mark.parametrize(
    "tokens, match",
    [
        (["data.max_length=abc"], "max_length"),
        (["data.micro_batch_size_per_gpu=0"], "micro_batch_size_per_gpu"),
        (["data.use_dynamic_bsz=true"], "max_token_len_per_gpu"),
        (["data.use_dynamic_bsz=maybe"], "use_dynamic_bsz"),
        (["optim.lr_scheduler=nope"], "nope"),
        (["ulysses_sequence_parallel_size=2"], "ulysses_sequence_parallel_size"),
    ],
)
def test_bad_values_are_errors(tokens, match):
    with pytest.raises(SftkitError, match=match):
        run(*tokens)


def test_bad_env_value_is_an_error():
    with pytest.raises(SftkitError, match="per_device_train_batch_size"):
        run(environ={"BATCH_SIZE": "four"})


@pytest.mark.parametrize("token", ["data.truncation=middle", "dtype=float16"])
def test_value_outside_choices_is_an_error(token):
    with pytest.raises(SftkitError, match=token.split("=")[1]):
        run(token)


def test_duplicate_recipe_keys_name_both_lines(tmp_path):
    recipe = tmp_path / "r.yaml"
    head = "model_name_or_path: m\ntrain_files: [t.parquet]\n"
    recipe.write_text(head + "learning_rate: 1.0e-5\nlearning_rate: 2.0e-5\n")
    with pytest.raises(SftkitError, match=r"'learning_rate' is set twice \(lines 3 and 4\)"):
        resolve(str(recipe), [], environ={})
    recipe.write_text(head + "optim.lr: 1.0e-5\nlearning_rate: 2.0e-5\n")
    with pytest.raises(SftkitError, match=r"learning_rate is set twice .*:3 and .*:4"):
        resolve(str(recipe), [], environ={})


def test_config_messages_name_what_the_user_set():
    with pytest.raises(SftkitError, match=r"train_batch_size=-16 \(command line\) must be >= 1"):
        resolve(None, [*BASE, "data.train_batch_size=-16"], environ={})
    with pytest.raises(SftkitError, match=r"per_device_train_batch_size.*set by env BATCH_SIZE"):
        resolve(None, BASE, environ={"BATCH_SIZE": "x"})
    with pytest.raises(SftkitError, match=r"max_length=0 \(env MAX_LENGTH\)"):
        resolve(None, BASE, environ={"MAX_LENGTH": "0"})


def test_config_folder_instead_of_a_recipe(tmp_path):
    (tmp_path / "tiny.yaml").write_text("model_name_or_path: m\n")
    with pytest.raises(SftkitError, match=r"is a folder, not a recipe file.*tiny.yaml"):
        resolve(str(tmp_path), [], environ={})
