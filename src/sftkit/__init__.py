"""sftkit: supervised fine-tuning on prompt/response data, built on TRL, Accelerate and PEFT."""

__version__ = "0.1.0"
