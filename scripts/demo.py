"""`make demo`: the whole workflow on CPU, offline, in a few minutes.

tiny model -> filter correct solutions + split by problem (seed Option B) -> full fine-tuning -> LoRA ->
checkpoints listed and a sample generation from the exported Hugging Face folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def step(title: str, *cmd: str) -> None:
    print(f"\n=== {title}\n$ {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, check=True)
    print(f"--- {title}: {time.perf_counter() - start:.1f} s", flush=True)


def sample_generation(model_dir: Path, prompt: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    torch.manual_seed(0)  # sampled (greedy decoding of an undertrained model repeats one token)
    out = model.generate(**ids, max_new_tokens=48, do_sample=True, temperature=0.7, top_k=50)
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=False)


def main() -> None:
    start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    step("build the offline tiny model", "sftkit", "tiny-model", "runs/tiny-model")
    sample = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "data/sample").glob("solutions_*.jsonl"))
    step(
        "keep the correct solutions (seed Option B, step 1)",
        "sftkit",
        "filter",
        "--solutions-file",
        *sample,
        "--metadata-file",
        "data/sample/metadata.jsonl",
        "--save-correct",
        "data/sft/correct_solutions.parquet",
        "--overwrite",  # the demo rebuilds its data on every run
    )
    step(
        "split by problem into train/val (step 2)",
        "sftkit",
        "prepare",
        "data/sft/correct_solutions.parquet",
        "--output-dir",
        "data/sft",
        "--val-split",
        "0.1",
        "--overwrite",
    )
    for run in ("runs/tiny", "runs/tiny-lora"):  # the demo's own runs: start them afresh (sftkit refuses to write
        shutil.rmtree(ROOT / run, ignore_errors=True)  # into a folder that holds another run's checkpoints)
    step("full fine-tuning", "sftkit", "train", "--config", "recipes/tiny.yaml")
    step("LoRA fine-tuning", "sftkit", "train", "--config", "recipes/tiny-lora.yaml")
    print("\n=== checkpoints")
    for run in ("runs/tiny", "runs/tiny-lora"):
        names = sorted(p.name for p in (ROOT / run).glob("global_step_*"))
        print(f"{run}: {', '.join(names)}  (latest: {(ROOT / run / 'latest').read_text().strip()})")
    import pyarrow.parquet as pq

    prompt = pq.read_table(ROOT / "data/sft/val.parquet", columns=["prompt"]).column(0)[0].as_py()
    hf = ROOT / "runs/tiny/global_step_final/huggingface"
    print(f"\n=== sample generation from {hf.relative_to(ROOT)} (200k parameters, one minute of training: babble)")
    print(f"prompt: {prompt[:200]}\nresponse: {sample_generation(hf, prompt)!r}")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
