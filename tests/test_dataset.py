"""Files -> tokenized examples (data/dataset.py) on rows that are not text: counted bad rows with file:line, for
`sftkit inspect` and `sftkit train` alike (§3.9 of issue 20: one lone surrogate crashed both with a TypeError)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from _files import write_jsonl
from sftkit import dry_run
from sftkit.data.dataset import build_dataset
from sftkit.data.labels import Encoder
from sftkit.errors import SftkitError
from sftkit.tiny import build_tokenizer

SURROGATE_ROWS = [
    '{"id": 0, "prompt": "What is 1 + 1?", "generated_solution": "1 + 1 = 2. #### 2"}',
    '{"id": 1, "prompt": "What is \\ud800 + 1?", "generated_solution": "1. #### 1"}',  # a lone surrogate escape
    '{"id": 2, "prompt": "What is 2 + 2?", "generated_solution": "2 + 2 = \\udfff. #### 4"}',
    '{"id": 3, "prompt": "What is 3 + 3?", "generated_solution": "3 + 3 = 6. #### 6"}',
]


def test_lone_surrogate_is_a_counted_bad_row_for_training(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", SURROGATE_ROWS)
    split = build_dataset([str(data)], Encoder(build_tokenizer("qwen2.5")), "prompt", "generated_solution", 256,
                          "right", cache_dir=tmp_path / "cache", num_proc=1)  # fmt: skip
    assert len(split) == 2 and split.report.rows_ok == 2 and split.report.n_bad == 2
    assert [ex.where for ex in split.report.examples] == [f"{data}:2", f"{data}:3"]
    assert all("surrogate" in ex.reason for ex in split.report.examples)


def test_lone_surrogate_is_a_counted_bad_row_for_inspect(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = write_jsonl(tmp_path / "data.jsonl", SURROGATE_ROWS)
    out = tmp_path / "report.json"
    argv = [f"model_name_or_path={tiny_model_dir}", f"train_files=[{data}]", "val_files=[]", "max_length=128",
            "train_batch_size=2", "per_device_train_batch_size=1", "--examples", "1", "--json", str(out)]  # fmt: skip
    assert dry_run.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"{data}:2" in printed and f"{data}:3" in printed and "surrogate" in printed
    rows = json.loads(out.read_text())["rows"]
    assert rows["usable"] == 2 and rows["examples"] == 2 and sum(rows["bad"].values()) == 2


def test_a_prepared_folder_means_one_split(assets, tmp_path, capsys):
    folder = assets["train"].parent  # prepare's output: train.parquet + val.parquet
    enc = Encoder(build_tokenizer())
    train_split = build_dataset([str(folder)], enc, "prompt", "generated_solution", 256, "right", name="train")
    val_split = build_dataset([str(folder)], enc, "prompt", "generated_solution", 256, "right", name="val")
    assert len(train_split) == pq.read_metadata(assets["train"]).num_rows == 540
    assert len(val_split) == pq.read_metadata(assets["val"]).num_rows == 60
    assert "is a prepared folder: train data" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, hint",
    [
        ("", "no rows"),
        ('[{"prompt": "p", "generated_solution": "r"}]\n', "no line is a JSON object"),
        ('{"prompt": 5, "generated_solution": "r"}\n', "non-text prompt or response"),
        ('{"question": "q", "answer": "a"}\n', "set data.prompt_key"),
    ],
)
def test_no_usable_row_says_why(tmp_path, content, hint):
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(SftkitError, match="no usable row") as err:
        build_dataset([str(path)], Encoder(build_tokenizer()), "prompt", "generated_solution", 64, "right")
    assert hint in str(err.value)
    if hint != "set data.prompt_key":
        assert "prompt_key" not in str(err.value).split("\n")[0]


def test_an_unfinished_generation_is_a_bad_row_for_training(tmp_path):
    """`sftkit eval` marks a generation cut at max_new_tokens `"finished": false`: training it would append an
    end-of-turn the model never wrote."""
    path = tmp_path / "round.jsonl"
    rows = [{"id": 1, "prompt": "p", "generated_solution": "done \\boxed{5}", "finished": True},
            {"id": 2, "prompt": "p", "generated_solution": "\\boxed{5} and so on and", "finished": False}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = build_dataset([str(path)], Encoder(build_tokenizer()), "prompt", "generated_solution", 256, "right")
    assert len(split) == 1 and split.report.bad == {"unfinished generation": 1}
    assert f"{path}:2" in str(split.report.examples[0])
