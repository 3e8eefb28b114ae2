"""The tokenized-examples cache (docs/contracts.md §3 Scale): built once per (files' content, tokenizer, template,
settings), opened memory-mapped by later runs with the same report; one changed row, another template or another
max_length builds again, nothing else does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sftkit.data import cache
from sftkit.data.dataset import build_dataset
from sftkit.data.labels import Encoder
from sftkit.tiny import build_tokenizer


def rows(n: int = 40) -> list[dict]:
    out = [{"id": i, "prompt": f"What is {i} + {i}?", "generated_solution": f"{i} + {i} = {2 * i}. #### {2 * i}"}
           for i in range(n)]  # fmt: skip
    out[3]["generated_solution"] = ""  # a bad row, reported on every open
    out[5]["prompt"] = "a long prompt " * 100  # dropped by max_length 256
    return out


def write(path: Path, data: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


def build(path, tmp_path, tokenizer=None, max_length=256, **kw):
    encoder = Encoder(tokenizer or build_tokenizer("qwen2.5"))
    return build_dataset([path], encoder, "prompt", "generated_solution", max_length, "right",
                         cache_dir=tmp_path / "cache", **kw)  # fmt: skip


def builds(tmp_path) -> list[dict]:
    log = tmp_path / "cache" / "builds.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_second_open_is_a_cache_hit_with_the_same_report_and_examples(tmp_path, capsys):
    path = write(tmp_path / "data.jsonl", rows())
    first = build(path, tmp_path)
    out_first = capsys.readouterr().out
    second = build(path, tmp_path)
    out_second = capsys.readouterr().out
    assert first.seconds is not None and second.seconds is None  # built, then opened
    assert len(builds(tmp_path)) == 1
    assert out_first == out_second and "data.jsonl:4" in out_first and "1 dropped" in out_first
    assert second.report.bad == first.report.bad and second.stats.dropped_ids == first.stats.dropped_ids == ["5"]
    assert second.dataset["input_ids"] == first.dataset["input_ids"]
    assert second.path == first.path and cache.is_complete(second.path)
    assert second.dataset.cache_files and second.dataset.cache_files[0]["filename"].startswith(str(second.path))


def test_what_builds_again_and_what_does_not(tmp_path):
    data = rows()
    path = write(tmp_path / "data.jsonl", data)
    key = build(path, tmp_path).key
    # the same content under another name and folder: the same examples
    moved = tmp_path / "elsewhere" / "renamed.jsonl"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    assert build(str(moved), tmp_path).key == key and len(builds(tmp_path)) == 1
    # one row changed (same file name): built again
    data[7]["generated_solution"] += " Checked."
    write(tmp_path / "data.jsonl", data)
    changed = build(path, tmp_path)
    assert changed.key != key and changed.seconds is not None and len(builds(tmp_path)) == 2
    # another chat template: built again
    tok = build_tokenizer("qwen2.5")
    tok.chat_template = build_tokenizer("chatml").chat_template
    assert build(path, tmp_path, tokenizer=tok).key not in (key, changed.key) and len(builds(tmp_path)) == 3
    # another max_length: built again; the same again: opened
    assert build(path, tmp_path, max_length=300).seconds is not None and len(builds(tmp_path)) == 4
    assert build(path, tmp_path, max_length=300).seconds is None and len(builds(tmp_path)) == 4
    # and on request
    assert build(path, tmp_path, max_length=300, rebuild=True).seconds is not None and len(builds(tmp_path)) == 5


def test_parallel_build_equals_the_one_process_build(tmp_path):
    path = write(tmp_path / "data.jsonl", rows(3000))
    one = build(path, tmp_path / "one", num_proc=1)
    two = build(path, tmp_path / "two", num_proc=2)
    assert one.key == two.key and len(one) == len(two) == 2999 - 1  # 1 bad row, 1 dropped
    assert one.dataset["input_ids"] == two.dataset["input_ids"]
    assert one.dataset["labels"] == two.dataset["labels"]
    assert (one.report.bad, one.stats.dropped_ids) == (two.report.bad, two.stats.dropped_ids)


def test_interrupted_build_leaves_no_folder_that_looks_complete(tmp_path, monkeypatch):
    path = write(tmp_path / "data.jsonl", rows())
    from sftkit.data import encode_pool

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(encode_pool, "encode_columns", crash)
    with pytest.raises(KeyboardInterrupt):
        build(path, tmp_path, num_proc=1)
    monkeypatch.undo()
    assert not list((tmp_path / "cache").glob(".tmp-*")) and not list((tmp_path / "cache").glob("examples-*"))
    assert build(path, tmp_path).seconds is not None  # built on the next run


def test_unwritable_cache_folder_is_a_clear_error(tmp_path):
    from sftkit.errors import SftkitError

    (tmp_path / "cache").write_text("a file where the cache folder should be")
    path = write(tmp_path / "data.jsonl", rows())
    with pytest.raises(SftkitError, match="cache folder .* data.cache_dir"):
        build(path, tmp_path)


# ---- a damaged cache is never trained on; I/O errors are messages -----------------------------------------------
def test_damaged_examples_file_is_built_again_not_read(tmp_path, capsys):
    path = write(tmp_path / "data.jsonl", rows())
    first = build(path, tmp_path)
    expected = first.dataset[:]["input_ids"]  # Python lists, not a view of the file damaged below
    arrow = first.path / cache.FILE
    size = arrow.stat().st_size
    with open(arrow, "r+b") as fh:  # bytes overwritten inside the data, the size unchanged
        fh.seek(size // 2)
        fh.write(b"\x7f" * 64)
    capsys.readouterr()
    again = build(path, tmp_path)
    assert "is damaged" in capsys.readouterr().out and again.seconds is not None and len(builds(tmp_path)) == 2
    assert again.dataset["input_ids"] == expected
    with open(arrow, "r+b") as fh:  # a truncated file
        fh.truncate(size // 3)
    truncated = build(path, tmp_path)
    assert "is damaged" in capsys.readouterr().out and truncated.dataset["input_ids"] == expected
    assert build(path, tmp_path).seconds is None and len(builds(tmp_path)) == 3  # intact again: opened


def test_temporary_folder_of_a_killed_build_is_removed(tmp_path):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(gone.stdout), os.getpid()
    (tmp_path / "cache").mkdir()
    host = socket.gethostname()
    left = tmp_path / "cache" / f".tmp-examples-0123abc-{host}-{dead}"
    running = tmp_path / "cache" / f".tmp-examples-4567def-{host}-{alive}"  # a live builder's: kept
    for folder in (left, running):
        folder.mkdir()
        (folder / cache.FILE).write_bytes(b"partial")
    build(write(tmp_path / "data.jsonl", rows()), tmp_path)
    assert not left.exists() and running.exists()


@pytest.fixture
def mounted(tmp_path):
    """Real small filesystems (tmpfs; root only), unmounted afterwards."""
    points = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_full_disk_during_the_build_is_a_clear_error(tmp_path, mounted):
    from sftkit.errors import SftkitError

    disk = mounted("disk", "size=16m")
    path = write(tmp_path / "data.jsonl", rows(2000))
    (disk / "ballast").write_bytes(b"\0" * (shutil.disk_usage(disk).free - (64 << 10)))
    with pytest.raises(SftkitError, match=rf"cannot write the examples cache in {disk}/cache \(No space left"):
        build(path, disk)
    assert not list((disk / "cache").glob(".tmp-*")) and not list((disk / "cache").glob("examples-*"))
    (disk / "ballast").unlink()
    assert len(build(path, disk)) == 1998  # room again: built


def test_read_only_cache_folder_is_a_clear_error(tmp_path, mounted):
    from sftkit.errors import SftkitError

    read_only = mounted("ro", "size=1m,ro")
    with pytest.raises(SftkitError, match=r"cannot write the examples cache .*Read-only file system.*data.cache_dir"):
        build_dataset([write(tmp_path / "data.jsonl", rows())], Encoder(build_tokenizer("qwen2.5")), "prompt",
                      "generated_solution", 256, "right", cache_dir=read_only)  # fmt: skip


def test_cache_key_changes_with_split_special_tokens(assets, tmp_path):
    """tokenizer_config.json's split_special_tokens changes every example: it used to leave the key unchanged."""
    from sftkit.training.modeling import load_tokenizer

    model = tmp_path / "model"
    shutil.copytree(assets["model"], model)
    first = build(str(assets["val"]), tmp_path, load_tokenizer(str(model)), verbose=False)
    config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**config, "split_special_tokens": True}))
    tok = load_tokenizer(str(model))
    fresh = Encoder(tok).encode("What is 2 + 3?", "It is 5.")
    before = Encoder(load_tokenizer(str(assets["model"]))).encode("What is 2 + 3?", "It is 5.")
    assert fresh != before  # the setting changes the examples (the prompt's <|im_start|> becomes plain text)
    second = build(str(assets["val"]), tmp_path, tok, verbose=False)
    assert second.key != first.key and second.seconds is not None  # built again, not the old examples


def test_cache_folder_of_the_earlier_layout_is_rebuilt_not_trusted(assets, tmp_path):
    """A folder written by the earlier cache layout (same key) was taken as complete with 0 examples."""
    from sftkit.training.modeling import load_tokenizer

    tok = load_tokenizer(str(assets["model"]))
    split = build(str(assets["train"]), tmp_path, tok, verbose=False)
    report = json.loads((split.path / "report.json").read_text())
    report.pop("examples_kept")  # what 8e184ce wrote: dataset/ + report.json without examples_kept
    (split.path / "dataset").mkdir()
    (split.path / "examples.arrow").rename(split.path / "dataset" / "data-00000-of-00001.arrow")
    (split.path / "report.json").write_text(json.dumps(report))
    again = build(str(assets["train"]), tmp_path, tok, verbose=False)  # raises "every example was dropped ..."
    assert len(again) == len(split)
