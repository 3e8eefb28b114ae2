"""val_accuracy during training (eval_accuracy_samples): greedy generation on validation problems, graded as
`sftkit filter` grades, logged at every validation and at the end (console, metrics.jsonl, loss.png)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _train_utils import train

pytestmark = pytest.mark.slow
N, NEW_TOKENS = 8, 24


def write_val(path, prompts: list[str]) -> list[str]:
    """A validation file of these prompts, gold answers 100, 101, ...; returns the golds."""
    golds = [str(100 + i) for i in range(len(prompts))]
    ids = [f"v{i}" for i in range(len(prompts))]
    table = {"id": ids, "prompt": prompts, "generated_solution": ["x"] * len(prompts), "gold_answer": golds}
    pq.write_table(pa.table(table), path)
    return golds


def val_file(assets, path, n: int = N) -> list[str]:
    """n distinct validation problems of the sample with gold answers."""
    rows = pq.read_table(assets["val"]).to_pylist()
    return write_val(path, list(dict.fromkeys(r["prompt"] for r in rows))[:n])


# Generation that answers every third problem right: the plumbing (which problems, sharding over ranks, the
# reduction, the logging) is then checked against an exact expected value. Real generation is tested in
# test_eval.py, and end to end (answers of an untrained model: none correct) below.
STUB = """
from sftkit import evaluation
from sftkit.evaluation import Generated

def generate(model, tokenizer, prompts, **kwargs):
    return [[Generated(f"The answer is {100 + int(p.split('#')[1]) if int(p.split('#')[1]) % 3 == 0 else -1}.", 5)]
            for p in prompts]

evaluation.generate = generate
"""


def numbered_val_file(path, n: int = N) -> list[str]:
    return write_val(path, [f"problem #{i}" for i in range(n)])


def test_val_accuracy_is_logged_at_each_validation(assets, tmp_path, monkeypatch):
    exec(STUB, {})  # patches sftkit.evaluation.generate for this process
    try:
        val = tmp_path / "val.parquet"
        numbered_val_file(val, 10)
        out = tmp_path / "run"
        train(assets, out, val_files=f"[{val}]", max_steps=4, eval_steps=2, save_steps=0, eval_accuracy_samples=9)
    finally:
        import importlib

        import sftkit.evaluation

        importlib.reload(sftkit.evaluation)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    accuracy = [(r["step"], r["val_accuracy"]) for r in rows if "val_accuracy" in r]
    assert [step for step, _ in accuracy] == [2, 4]  # every test_freq, and the end (step 4) once
    assert all(value == pytest.approx(3 / 9) for _, value in accuracy)  # problems 0, 3, 6 of the first 9
    assert (out / "loss.png").is_file()


def test_val_accuracy_with_real_generation(assets, tmp_path):
    """The real path: greedy generation by the model in training, graded; an untrained tiny model states no
    answer, so nothing is correct."""
    val = tmp_path / "val.parquet"
    val_file(assets, val, 4)
    out = tmp_path / "run"
    train(assets, out, val_files=f"[{val}]", max_steps=2, eval_steps=0, save_steps=0, eval_accuracy_samples=4,
          eval_accuracy_max_new_tokens=NEW_TOKENS)  # fmt: skip
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_accuracy"] for r in rows if "val_accuracy" in r] == [0.0]


def test_val_accuracy_without_gold_answers_is_a_clear_error(assets, tmp_path):
    from sftkit.errors import SftkitError

    with pytest.raises(SftkitError, match="eval_accuracy_samples=4.*gold"):
        train(assets, tmp_path / "run", max_steps=2, eval_accuracy_samples=4)
