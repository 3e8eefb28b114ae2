"""The command line (cli.py, config/recipe_arg.py, config/help.py): `--config` splitting, `sftkit train`'s user
errors, every command's --help (each option explained), and `train --help` instant and current."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from sftkit import cli
from sftkit.config.fields import CONFIG_CLASSES
from sftkit.config.recipe_arg import split_config
from sftkit.errors import SftkitError
from sftkit.train import main as train_main
from sftkit.verl.keys import VERL_KEYS

ROOT = Path(__file__).resolve().parents[1]


# ---- split_config / train.main ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--config", "r.yaml", "optim.lr=1"], ("r.yaml", ["optim.lr=1"])),
        (["optim.lr=1", "--config=r.yaml"], ("r.yaml", ["optim.lr=1"])),
        (["--recipe", "r.yaml"], ("r.yaml", [])),
        (["optim.lr=1"], (None, ["optim.lr=1"])),
    ],
)
def test_split_config(argv, expected):
    assert split_config(argv) == expected


def test_config_without_path_is_an_error():
    with pytest.raises(SftkitError, match="--config needs a recipe path"):
        split_config(["optim.lr=1", "--config"])


def test_train_main_user_error_exits_2_without_traceback(tmp_path, capsys):
    assert train_main(["--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not found" in err and "Traceback" not in err
    assert train_main(["model_name_or_path=m", "train_files=[t.parquet]", "optim.lrr=1"]) == 2
    assert "Did you mean" in capsys.readouterr().err


# ---- --help --------------------------------------------------------------------------------------------------------
def exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's --help
        return 0 if exc.code is None else exc.code


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"]])
def test_sftkit_help(argv, capsys):
    assert exit_code(argv) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command(capsys):
    assert cli.main(["trian"]) == 2
    assert "Did you mean: train" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_subcommand_help(name, capsys, monkeypatch):
    if name == "filter":
        pytest.importorskip(cli.COMMANDS[name][0])
    shown = []  # the argparse parsers that printed their help (to check every option is explained)
    original = argparse.ArgumentParser.print_help

    def record(self, file=None):
        shown.append(self)
        return original(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", record)
    assert exit_code([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"sftkit {name}" in out
    if name not in ("train", "inspect"):  # these two print their own help text
        assert shown, f"{name} --help printed no argparse help"
    if name == "launch":  # Accelerate's own options, explained by Accelerate (which hides some, from sys.argv)
        return
    for parser in shown:
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{name}: {action.option_strings} unexplained"


def test_train_help_lists_every_key(capsys):
    assert train_main(["--help"]) == 0
    out = capsys.readouterr().out
    for key in VERL_KEYS:
        assert key in out
    for cls in CONFIG_CLASSES:
        for f in dataclasses.fields(cls):
            assert f"--{f.name}" in out
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_train_help_is_instant_and_current():
    import subprocess
    import sys

    from sftkit.config import help as train_help

    assert train_help.text() == train_help.render(), "run `python -m sftkit.config.help` to refresh train_help.txt"
    code = "import sys; from sftkit.cli import main; main(['train', '--help']); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False")  # torch not even imported
