"""The central command's real FSDP2 path on CPU: `accelerate launch --config_file accelerate_configs/fsdp4.yaml
--num_processes 2` over gloo, with tests/fsdp_launch.py applying in each rank the one patch Accelerate needs on CPU
(it otherwise drops the FSDP plugin and trains DDP). Every launch checks, from what each rank recorded of its
prepared model, that FSDP2 really wrapped and sharded it; the failure mode these tests guard is a silent fallback.

The same command without the patch is what a CPU-only machine runs: DDP, and it says so (training/sharding.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch

from _train_utils import BIN, ROOT, free_port, launch, losses, model_pt, overrides, train
from sftkit.checkpoint import layout

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
FSDP4 = str(ROOT / "accelerate_configs/fsdp4.yaml")
TIMES: dict[str, float] = {}  # seconds per launch, printed at the end of the module (-s)


def fsdp_launch(args: list[str], evidence: Path | None, name: str, expect: int = 0) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file fsdp4.yaml --num_processes 2` (no --cpu): through tests/fsdp_launch.py
    when `evidence` is a folder (the real FSDP2 path), else `-m sftkit.train` as users run it."""
    target = [str(ROOT / "tests/fsdp_launch.py"), str(evidence)] if evidence else ["-m", "sftkit.train"]
    cmd = [str(BIN / "accelerate"), "launch", "--config_file", FSDP4, "--num_processes", "2",
           "--main_process_port", str(free_port()), *target, *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    TIMES[name] = time.perf_counter() - start
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_fsdp2(proc: subprocess.CompletedProcess, evidence: Path, lora: bool = False, bf16: bool = False) -> list:
    """Both ranks trained an FSDPModule whose every parameter is a DTensor sharded in two along dim 0."""
    assert "sharding: FSDP2 over 2 ranks\n" in proc.stdout
    found = [json.loads((evidence / f"rank{r}.json").read_text()) for r in (0, 1)]
    for f in found:
        assert f["fsdp_module"] and f["distributed_type"] == "DistributedType.FSDP", f
        assert f["model_class"] == ("FSDPPeftModelForCausalLM" if lora else "FSDPQwen2ForCausalLM")
        assert f["fsdp_submodules"] >= 3  # the model and its decoder layers (TRANSFORMER_BASED_WRAP)
        assert f["dtensor_params"] == f["params"] and f["placements"] == ["(Shard(dim=0),)"]
        assert f["local_numel"] * 2 <= f["full_numel"] + 2 * f["params"]  # each rank holds half of every tensor
        assert f["param_dtype"] == ("torch.bfloat16" if bf16 else "None")  # MixedPrecisionPolicy
        assert f["compute_dtypes"] == (["torch.bfloat16"] if bf16 else ["torch.float32"])
    return found


def run_args(assets, out: Path, **extra) -> list[str]:
    # micro batch 2, global batch 8: 2 micro-batches per rank and step (no_sync under FSDP2 for the first)
    base = dict(max_steps=4, save_steps=2, eval_steps=2, per_device_train_batch_size=2, max_length=128)
    return overrides(assets, out, **{**base, **extra})


def assert_same_losses(a: dict, b: dict, rel: float = 1e-5) -> None:
    assert sorted(a) == sorted(b)
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=rel), step


def test_fsdp2_trains_sharded_and_matches_one_process(assets, tmp_path, monkeypatch, capsys):
    """The default suite's one launch: full fine-tuning under the real FSDP2 path, with micro-batch accumulation,
    checkpoints and the export; same losses as one process. The one process is run with the FSDP config's variables
    set: it cannot shard, and says so."""
    out, evidence = tmp_path / "fsdp", tmp_path / "evidence"
    proc = fsdp_launch(run_args(assets, out, max_steps=2, eval_steps=0), evidence, "fsdp2 full fp32 (default)")
    assert_fsdp2(proc, evidence)
    assert layout.load_state(out / "global_step_final")["sharding"] == "FSDP2 over 2 ranks"
    assert (out / "global_step_final" / "huggingface" / "model.safetensors").is_file()

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    one = tmp_path / "one"
    train(assets, one, max_steps=2, eval_steps=0, save_steps=0, per_device_train_batch_size=2, max_length=128)
    said = capsys.readouterr().out
    assert "sharding: none — the accelerate config asks for FSDP2, not run: one process" in said
    assert_same_losses(losses(one), losses(out))
    assert layout.load_state(one / "global_step_final")["sharding"] == "none"


@pytest.mark.extended
def test_fsdp2_resume_is_bit_exact_and_checkpoints_cross_with_ddp(assets, tmp_path):
    """fp32 full fine-tuning: FSDP2 = DDP (the central command on CPU, which says it runs DDP); FSDP2 resumes its
    own checkpoint bit-exactly; a DDP checkpoint resumes under FSDP2 and an FSDP2 one under DDP. The accuracy
    probe generates under FSDP2 (synced_gpus) the texts the exported model generates in one process."""
    from test_accuracy import val_file

    val = tmp_path / "val.parquet"
    val_file(assets, val, 5)  # 3 problems on rank 0, 2 (+1 repeated) on rank 1: ranks finish apart
    probe = dict(
        val_files=f"[{val}]", eval_accuracy_samples=5, eval_accuracy_max_new_tokens=8, max_steps=6, max_length=256
    )
    fsdp, ddp = tmp_path / "fsdp", tmp_path / "ddp"
    ev = tmp_path / "ev"
    proc = fsdp_launch(run_args(assets, fsdp, **probe), ev / "a", "fsdp2 full fp32 + probe, 6 steps")
    found = assert_fsdp2(proc, ev / "a")
    plain = fsdp_launch(run_args(assets, ddp, **probe), None, "fsdp4.yaml unpatched (DDP), 6 steps")
    said = "sharding: DDP over 2 ranks — the accelerate config asks for FSDP2, not run: Accelerate runs FSDP2 only"
    assert said in plain.stdout
    assert layout.load_state(ddp / "global_step_2")["sharding"] == "DDP over 2 ranks"
    a, b = losses(fsdp), losses(ddp)
    assert_same_losses(a, b)
    assert_generated_as_one_process(found, fsdp / "global_step_final" / "huggingface")

    resumed = tmp_path / "resumed"
    proc = fsdp_launch(run_args(assets, resumed, resume_from_checkpoint=fsdp / "global_step_2", **probe), ev / "b",
                       "fsdp2 resume of fsdp2")  # fmt: skip
    assert_fsdp2(proc, ev / "b")
    c = losses(resumed)
    assert sorted(c) == [3, 4, 5, 6] and all(c[s] == a[s] for s in c)  # bit-exact
    final = model_pt(fsdp / "global_step_final")
    assert all(torch.equal(t, final[k]) for k, t in model_pt(resumed / "global_step_final").items())

    from_ddp = tmp_path / "from-ddp"
    proc = fsdp_launch(run_args(assets, from_ddp, resume_from_checkpoint=ddp / "global_step_4", **probe), ev / "c",
                       "fsdp2 resume of ddp")  # fmt: skip
    assert_fsdp2(proc, ev / "c")
    assert_same_losses({s: b[s] for s in (5, 6)}, losses(from_ddp))
    to_ddp = tmp_path / "to-ddp"
    launch("accelerate", run_args(assets, to_ddp, resume_from_checkpoint=fsdp / "global_step_4", **probe))
    assert_same_losses({s: a[s] for s in (5, 6)}, losses(to_ddp))


def assert_generated_as_one_process(found: list[dict], export: Path) -> None:
    """The probe's last generation (at the final step) on each rank, under FSDP2 with synced_gpus, gave the texts
    the exported final model gives in one process."""
    from transformers import AutoModelForCausalLM

    from sftkit.evaluation import generate
    from sftkit.training.modeling import load_tokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32), load_tokenizer(str(export))
    for f in found:
        last = f["generated"][-1]
        assert last["synced_gpus"] is True
        outs = generate(model, tokenizer, last["prompts"], max_new_tokens=8, batch_size=16)
        assert [o[0].text for o in outs] == last["texts"]


@pytest.mark.extended
def test_fsdp2_bf16_lora_and_sequence_parallel(assets, tmp_path):
    """bf16 MixedPrecisionPolicy (full fine-tuning) and LoRA (fp32) under FSDP2: sharded, losses as one process
    (bf16: close), fp32 master weights saved; LoRA saves the adapter only and resumes bit-exactly; the LoRA run
    also shards with sequence parallelism over the same 2 ranks."""
    ev = tmp_path / "ev"
    bf16 = tmp_path / "bf16"
    proc = fsdp_launch(run_args(assets, bf16, bf16="true", eval_steps=0), ev / "bf16", "fsdp2 full bf16")
    assert_fsdp2(proc, ev / "bf16", bf16=True)
    one = tmp_path / "one"
    train(assets, one, max_steps=4, save_steps=0, eval_steps=0, per_device_train_batch_size=2, max_length=128)
    assert_same_losses(losses(one), losses(bf16), rel=2e-2)
    assert all(t.dtype == torch.float32 for t in model_pt(bf16 / "global_step_final").values())

    lora = dict(lora_rank=8, lora_alpha=16, target_modules="all-linear", learning_rate=1e-2)
    a = tmp_path / "lora"
    proc = fsdp_launch(run_args(assets, a, **lora), ev / "lora", "fsdp2 lora fp32")
    assert_fsdp2(proc, ev / "lora", lora=True)
    saved = model_pt(a / "global_step_final")
    assert saved and all(".lora_" in k for k in saved)
    assert (a / "global_step_final" / "huggingface" / "adapter_config.json").is_file()
    one_lora = tmp_path / "one-lora"
    train(assets, one_lora, max_steps=4, save_steps=0, eval_steps=2, per_device_train_batch_size=2, max_length=128,
          **lora)  # fmt: skip
    assert_same_losses(losses(one_lora), losses(a))
    b = tmp_path / "lora-resumed"
    proc = fsdp_launch(run_args(assets, b, resume_from_checkpoint=a / "global_step_2", **lora), ev / "lr",
                       "fsdp2 lora resume")  # fmt: skip
    assert_fsdp2(proc, ev / "lr", lora=True)
    assert all(losses(b)[s] == losses(a)[s] for s in (3, 4)) and sorted(losses(b)) == [3, 4]

    sp = tmp_path / "sp"
    # sp: no padding, and no shared-prompt packing (not with sp: the one-process side would draw prompts together)
    free = dict(train_batch_size=4, per_device_train_batch_size=4, use_remove_padding="true", share_prompts="false",
                **lora)  # fmt: skip
    proc = fsdp_launch(run_args(assets, sp, ulysses_sequence_parallel_size=2, eval_steps=0, **free), ev / "sp",
                       "fsdp2 lora + sequence parallel 2")  # fmt: skip
    assert_fsdp2(proc, ev / "sp", lora=True)
    assert "world_size: 2 (dp 1 x sp 2)" in proc.stdout
    one_sp = tmp_path / "one-sp"
    train(assets, one_sp, max_steps=4, save_steps=0, eval_steps=0, max_length=128, **free)
    assert_same_losses(losses(one_sp), losses(sp), rel=1e-4)


def teardown_module():
    if TIMES:
        print("\nlaunch seconds: " + ", ".join(f"{k}: {v:.1f}" for k, v in TIMES.items()))
