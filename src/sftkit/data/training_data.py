"""A run's tokenized training and validation examples, built once per node and opened by every process (the
training run and the dry run load them the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sftkit import dist

if TYPE_CHECKING:
    from sftkit.config.plan import RunPlan


@dataclass
class TrainingData:
    train: object  # data.dataset.Split
    val: object | None


def load_data(plan: RunPlan, tokenizer) -> TrainingData:
    """The tokenized examples: built by one process per node (or opened from the cache), then opened by the
    others; an error on any process stops all of them."""
    from sftkit.data.dataset import build_dataset
    from sftkit.data.labels import Encoder

    encoder, d = Encoder(tokenizer), plan.data

    def both(verbose: bool) -> TrainingData:
        common = dict(encoder=encoder, prompt_key=d.prompt_key, response_key=d.response_key,
                      max_length=plan.cut_length, truncation=d.truncation, strict=d.strict, cache_dir=d.cache_dir,
                      num_proc=plan.train.dataset_num_proc, verbose=verbose)  # fmt: skip
        train = build_dataset(d.train_files, name="train", rebuild=d.rebuild_cache, **common)
        val = build_dataset(d.val_files, name="val", rebuild=d.rebuild_cache, **common) if d.val_files else None
        return TrainingData(train, val)

    builder = dist.is_local_main()
    built = dist.agree(lambda: both(dist.is_main()) if builder else None)  # one process per node builds ...
    data = dist.agree(lambda: built if builder else both(False))  # ... then the others open what it built
    for name, split in (("train", data.train), ("val", data.val)):
        if split is not None:
            how = f"built in {split.seconds:.1f} s" if split.seconds is not None else f"from cache {split.path}"
            dist.print0(f"data: tokenized {len(split)} {name} examples ({how})")
    return data
