# sftkit — `make demo` and `make test` are the two commands to start with (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is chosen deliberately: the small CPU wheel where there is no NVIDIA GPU (CI, laptops), otherwise pip's
# default CUDA build. Override with e.g. `make test TORCH='torch==2.13.0'` or `TORCH='torch>=2.6'`.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.6' || echo 'torch==2.13.0')
# Extra pip options for that install, e.g. PyTorch's CPU-only index on a machine without GPU whose pip would
# otherwise fetch the CUDA build: TORCH_INDEX='--index-url https://download.pytorch.org/whl/cpu'
TORCH_INDEX ?=
RECIPE ?= tiny
ACCEL ?=
ARGS ?=
INPUT ?= data/sample/solutions_*.jsonl
METADATA ?= data/sample/metadata.jsonl
OUT ?= data/sft
FILTER ?= 1
VAL_SPLIT ?= 0.1
# Curation in `make prepare` (README "Curating a round"): DEDUP=none|exact|normalized, MAX_PER_PROMPT=K (empty: no
# cap), DECONTAMINATE='eval files' (empty: none), MIX='round1/*.jsonl:0.5 base.parquet:1' (more weighted sources).
DEDUP ?= none
MAX_PER_PROMPT ?=
DECONTAMINATE ?=
MIX ?=
CURATE = --dedup $(DEDUP) $(if $(MAX_PER_PROMPT),--max-per-prompt $(MAX_PER_PROMPT)) \
	$(if $(DECONTAMINATE),--decontaminate $(DECONTAMINATE)) $(if $(MIX),--mix $(MIX))
PYTEST_ARGS ?=
# `make train ACCEL=fsdp4` launches through `sftkit launch` (accelerate launch keeping the exit code: 75 when
# pre-empted) with accelerate_configs/fsdp4.yaml; empty = one process.
LAUNCH = $(if $(ACCEL),$(BIN)/sftkit launch --config_file accelerate_configs/$(ACCEL).yaml -m sftkit.train,$(BIN)/sftkit train)
# The tiny recipes train on the bundled sample with the offline tiny model: build both when missing.
TINY_DEPS = $(if $(filter tiny,$(RECIPE)),runs/tiny-model/config.json $(OUT)/train.parquet)

.PHONY: install demo test test-extended tiny prepare train lora bench bench-data bench-sp lint clean eval round rounds

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(TORCH_INDEX)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

install: $(BIN)/.installed

runs/tiny-model/config.json: $(BIN)/.installed
	$(BIN)/sftkit tiny-model runs/tiny-model

tiny: runs/tiny-model/config.json

$(OUT)/train.parquet: $(BIN)/.installed
	$(MAKE) --no-print-directory prepare

# The seed's Option B (filter correct solutions, then split by problem); FILTER=0 gives Option A (all solutions).
# A make target rebuilds its files: --overwrite replaces the last run's (an input among them is still refused).
prepare: $(BIN)/.installed
ifeq ($(FILTER),1)
	$(BIN)/sftkit filter --solutions-file $(INPUT) --metadata-file $(METADATA) \
		--save-correct $(OUT)/correct_solutions.parquet --overwrite
	$(BIN)/sftkit prepare $(OUT)/correct_solutions.parquet --output-dir $(OUT) --val-split $(VAL_SPLIT) $(CURATE) \
		--overwrite
else
	$(BIN)/sftkit prepare $(INPUT) --output-dir $(OUT) --val-split $(VAL_SPLIT) $(CURATE) --overwrite
endif

train: $(BIN)/.installed $(TINY_DEPS)
	$(LAUNCH) --config recipes/$(RECIPE).yaml $(ARGS)

lora: $(BIN)/.installed $(TINY_DEPS)
	$(LAUNCH) --config recipes/$(RECIPE)-lora.yaml $(ARGS)

# `make eval`: generate with a checkpoint on held-out problems and grade them (default: the demo model of
# `make train` on the demo's validation problems). `make round`: one rejection-sampling round on the demo assets.
CKPT ?= runs/tiny/global_step_final
PROBLEMS ?= $(OUT)/val.parquet
EVAL_OUT ?= runs/eval/solutions.jsonl
EVAL_ARGS ?= --max-new-tokens 128
ROUND ?= runs/round
DEMO_CKPT := runs/tiny/global_step_final
# `make round` on CPU: a few problems, short generations
FAST_EVAL := --limit 20 --max-new-tokens 64
EVAL_DEPS = $(if $(filter $(DEMO_CKPT),$(CKPT)),$(DEMO_CKPT)/train_state.pt) \
	$(if $(filter $(OUT)/val.parquet,$(PROBLEMS)),$(OUT)/train.parquet)

$(DEMO_CKPT)/train_state.pt: | $(BIN)/.installed
	$(MAKE) --no-print-directory train RECIPE=tiny

eval: $(BIN)/.installed $(EVAL_DEPS)
	$(BIN)/sftkit eval $(CKPT) --problems $(PROBLEMS) --metadata-file $(METADATA) --output $(EVAL_OUT) $(EVAL_ARGS) \
		--overwrite

# generate on the training problems (2 samples each) -> keep the correct ones, with the round's data so far ->
# split -> fine-tune the checkpoint further (a few steps) -> evaluate the new checkpoint on the held-out problems.
round: $(BIN)/.installed $(DEMO_CKPT)/train_state.pt $(OUT)/train.parquet
	rm -rf $(ROUND)
	$(BIN)/sftkit eval $(DEMO_CKPT) --problems $(OUT)/train.parquet --metadata-file $(METADATA) --samples 2 \
		--temperature 0.7 $(FAST_EVAL) --output $(ROUND)/solutions.jsonl
	$(BIN)/sftkit filter --solutions-file $(INPUT) $(ROUND)/solutions.jsonl --metadata-file $(METADATA) \
		--save-correct $(ROUND)/data/correct_solutions.parquet
	$(BIN)/sftkit prepare $(ROUND)/data/correct_solutions.parquet --output-dir $(ROUND)/data --val-split $(VAL_SPLIT)
	$(BIN)/sftkit train --config recipes/tiny.yaml model_name_or_path=$(DEMO_CKPT)/huggingface \
		train_files=[$(ROUND)/data/train.parquet] val_files=[$(ROUND)/data/val.parquet] \
		output_dir=$(ROUND)/model max_steps=10
	$(BIN)/sftkit eval $(ROUND)/model/global_step_final --problems $(OUT)/val.parquet --metadata-file $(METADATA) \
		$(FAST_EVAL) --output $(ROUND)/eval_after.jsonl --report-json $(ROUND)/eval_after.json

# `make rounds`: the whole loop, 2 rounds of recipes/rounds-tiny.yaml on the bundled sample (a few minutes on CPU);
# rerun to continue after a stop. ROUNDS=qwen1.5b ACCEL=fsdp4 for recipes/rounds-qwen1.5b.yaml on 4 GPUs.
ROUNDS ?= tiny
rounds: $(BIN)/.installed $(if $(filter tiny,$(ROUNDS)),runs/tiny-model/config.json $(OUT)/train.parquet)
	$(BIN)/sftkit rounds --config recipes/rounds-$(ROUNDS).yaml $(if $(ACCEL),--accelerate-config $(ACCEL)) $(ARGS)

demo: $(BIN)/.installed
	$(BIN)/python scripts/demo.py

# The default suite (about 4 minutes on 2 cores); `test-extended` adds the long end-to-end and 4-process checks
# (CI runs both).
test: $(BIN)/.installed
	$(BIN)/pytest -q -m "not extended" $(PYTEST_ARGS)

test-extended: $(BIN)/.installed
	$(BIN)/pytest -q -m extended $(PYTEST_ARGS)

# CPU bench model: the tiny tokenizer with a 256-wide, 4-layer body (4M parameters), big enough that compute, not
# per-step overhead, dominates a step, as it does for real models on GPUs.
runs/bench-model/config.json: $(BIN)/.installed
	$(BIN)/sftkit tiny-model runs/bench-model --hidden-size 256 --layers 4

# One whole epoch per run (every trainer covers the same examples; TRL's length groups run their longest batches
# first, so short windows favour it), 2 interleaved rounds, batch 16: 300 one-solution GSM8K rows, 75 problems x 4
# GSM8K- and MATH-length solutions (~12 minutes on 2 busy cores). TRL's defaults and share_prompts=false once (for
# reference); TRL's packing (BFD) only with ARGS (`--variants ... trl-packing`): on CPU it runs far behind
# group_by_length (benchmarks/RESULTS.md).
BENCH_ARGS ?= --epoch --rounds 2 --batch 16 --data gsm8k gsm8k-k4 math-k4 --gsm8k-rows 300 --problems 75 \
	--variants sftkit trl-group_by_length sftkit-unshared trl --once sftkit-unshared trl
bench: $(BIN)/.installed runs/bench-model/config.json
	$(BIN)/python benchmarks/bench.py --model $(CURDIR)/runs/bench-model $(BENCH_ARGS) $(ARGS)

# 10^5 and 10^6 rows made from the bundled sample through prepare, filter and the training-set build (rows/s, peak
# memory), and a 1-step training on 200k rows twice (cold / warm cache): appended to benchmarks/RESULTS.md.
bench-data: $(BIN)/.installed
	$(BIN)/python benchmarks/data_bench.py --results benchmarks/RESULTS.md $(ARGS)

# Peak memory per rank against sequence length, without and with Ulysses sequence parallelism (2 processes).
bench-sp: $(BIN)/.installed
	$(BIN)/python benchmarks/sp_memory.py $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests scripts benchmarks sft evaluation

clean:
	rm -rf runs $(OUT) .pytest_cache
