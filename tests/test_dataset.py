"""Files -> tokenized examples (data/dataset.py) on rows that are not text: counted bad rows with file:line, for
`sftkit inspect` and `sftkit train` alike (§3.9 of issue 20: one lone surrogate crashed both with a TypeError)."""

from __future__ import annotations

import json

from _files import write_jsonl
from sftkit import dry_run
from sftkit.data.dataset import build_dataset
from sftkit.data.labels import Encoder
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
