"""`data/rows.py`: a row that is valid JSON but not text (a lone UTF-16 surrogate) is a counted bad row with
file:line, in every command that reads rows, never a UnicodeEncodeError (issue #20, 3.9); the response column's
`generated_solution` -> `response` fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from _files import write_jsonl
from sftkit.data import prepare
from sftkit.data.rows import RowReport, iter_jsonl, response_column
from sftkit.grading import filter as grade

ROWS = [
    {"id": i, "prompt": f"What is {i} + 1?", "generated_solution": f"{i} + 1 = {i + 1}. #### {i + 1}"}
    for i in range(4)
]
LONE = r'{"id": 9, "prompt": "What is 9 + 1?", "generated_solution": "x \ud800 y. #### 10"}'  # JSON escape, unpaired
PAIRED = r'{"id": 8, "prompt": "What is 8 + 1?", "generated_solution": "\ud83d\ude00 8 + 1 = 9. #### 9"}'  # an emoji


def test_a_lone_surrogate_is_a_bad_row_and_a_pair_is_text(tmp_path: Path):
    src = write_jsonl(tmp_path / "s.jsonl", [ROWS[0], LONE, PAIRED])
    report = RowReport()
    rows = [row for _, _, row in iter_jsonl([src], report, required=("prompt", "generated_solution"))]
    assert [r["id"] for r in rows] == [0, 8] and rows[1]["generated_solution"].startswith("\U0001f600")
    assert report.bad == {"lone surrogate": 1} and report.rows_read == 3
    assert (
        str(report.examples[0])
        == f"{src}:2: 'generated_solution' holds a lone UTF-16 surrogate (\\ud800), which is not text"
    )


def test_prepare_counts_a_lone_surrogate_row(tmp_path: Path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", [*ROWS[:2], LONE, *ROWS[2:]])
    assert prepare.main([str(src), "--output-dir", str(tmp_path / "out"), "--val-split", "0"]) == 0
    out = capsys.readouterr().out
    assert "dropped (lone surrogate): 1" in out and f"{src}:3: 'generated_solution' holds a lone" in out
    assert pq.read_table(tmp_path / "out" / "train.parquet").num_rows == 4


def test_filter_counts_a_lone_surrogate_row(tmp_path: Path, capsys):
    src = write_jsonl(tmp_path / "s.jsonl", [*ROWS[:2], LONE, *ROWS[2:]])
    meta = write_jsonl(tmp_path / "m.jsonl", [{"id": i, "answer": str(i + 1)} for i in (0, 1, 2, 3, 9)])
    argv = [
        "--solutions-file",
        src,
        "--metadata-file",
        meta,
        "--save-correct",
        tmp_path / "c.parquet",
        "--workers",
        "1",
    ]
    assert grade.main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert "lone surrogate: 1" in out and f"{src}:3:" in out
    assert pq.read_table(tmp_path / "c.parquet").num_rows == 4


def test_the_default_response_key_falls_back_to_response_only_when_it_is_absent():
    assert response_column({"prompt", "response"}, "generated_solution") == "response"
    assert response_column({"prompt", "response", "generated_solution"}, "generated_solution") == "generated_solution"
    assert response_column({"prompt"}, "generated_solution") == "generated_solution"  # the caller reports it missing
    assert response_column({"prompt", "response"}, "answer") == "answer"  # a key the user chose never falls back


def test_the_same_file_named_twice_is_read_once(assets, tmp_path, monkeypatch):
    """Relative and absolute: it used to be read twice (1080 examples instead of 540, every one trained twice per
    epoch, no message)."""
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder
    from sftkit.training.modeling import load_tokenizer

    encoder = Encoder(load_tokenizer(str(assets["model"])))
    monkeypatch.chdir(assets["train"].parent)

    def build(files):
        return build_dataset(files, encoder, "prompt", "generated_solution", 256, "right",
                             cache_dir=str(tmp_path / "cache"), verbose=False)  # fmt: skip

    once = build(["train.parquet"])
    assert len(build(["train.parquet", str(assets["train"].resolve())])) == len(once)


def test_bom_is_skipped_and_invalid_utf8_is_a_counted_bad_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = [json.dumps({"prompt": f"p{i}", "generated_solution": "é"}).encode() for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + good[0] + b"\n" + b'{"prompt": "p\xff", "generated_solution": "x"}\n'
                     + good[1] + b"\n" + good[2] + b"\n")  # fmt: skip
    report = RowReport()
    rows = list(iter_jsonl([path], report))
    assert [line for _, line, _ in rows] == [1, 3, 4] and rows[0][2]["prompt"] == "p0"  # row 1 kept
    assert report.bad == {"invalid UTF-8": 1} and f"{path}:2" in str(report.examples[0])
    assert "0xff" in str(report.examples[0])
