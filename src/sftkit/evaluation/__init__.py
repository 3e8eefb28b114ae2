"""Evaluation: generate solutions with a model, grade them as `sftkit filter` does, and write the next round's data.

The CLI is `sftkit eval` (`command.py`). The in-process API, for code that already holds the model (the trainer's
evaluation during training):

    from sftkit.evaluation import generate, grade

    outs = generate(model, tokenizer, prompts, samples=1, temperature=0.0, top_p=1.0, max_new_tokens=1024,
                    batch_size=64, seed=0)          # -> list[list[Generated]]: `samples` per prompt, in order
    correct = grade(golds, [o[0].text for o in outs])  # -> list[bool], `sftkit filter`'s verdict "correct"

- `generate(model, tokenizer, prompts, samples=1, temperature=0.0, top_p=1.0, max_new_tokens=1024,
  batch_size=64, seed=0, progress=False, logits_processor=None) -> list[list[Generated]]`: works on a loaded
  `PreTrainedModel` or PEFT model (not an FSDP-sharded one: gather it first), on the model's device. The prompt is
  framed exactly as in training (`Encoder.prompt_ids_batch`), generation stops at the trained end-of-turn
  (`Encoder.stop_ids`); temperature 0 is greedy. `batch_size` counts sequences (prompts x samples). Every module's
  train/eval mode and the global RNG states are restored afterwards. `Generated` has `text` (without the
  end-of-turn), `num_tokens` (generated tokens, end-of-turn included) and `finished` (False: cut at
  max_new_tokens).
- `grade(golds, texts, timeout=5.0, workers=1) -> list[bool]`: each text's final answer against the gold answer at
  the same index, with the filter's extraction and math-verify judgement. `grade_texts` gives the verdicts, the
  extracted answers and how they were found.
"""

from sftkit.evaluation.generate import Generated, Sampling, generate
from sftkit.evaluation.grade import Graded, grade, grade_texts

__all__ = ["Generated", "Graded", "Sampling", "generate", "grade", "grade_texts"]
