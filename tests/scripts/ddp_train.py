"""Run by tests/test_multiprocess.py under `torchrun --nproc_per_node 2`: train a few steps, dump parameters."""

import os
import string
import sys

import torch
from datasets import Dataset

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.testing import make_tokenizer, target_fraction_reward

model_path, out_dir = sys.argv[1], sys.argv[2]
tokenizer = make_tokenizer()
dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": f"prompt {i}"}] for i in range(64)]})
args = CoupledGRPOConfig(
    output_dir=out_dir, max_completion_length=8, num_generations=4, per_device_train_batch_size=4, max_steps=3,
    bf16=False, use_cpu=True, report_to="none", learning_rate=0.05, save_strategy="no", logging_steps=1,
    gradient_checkpointing=False, disable_tqdm=True, beta=0.01,
)
trainer = CoupledGRPOTrainer(
    model_path, target_fraction_reward(string.ascii_lowercase), args=args, train_dataset=dataset,
    processing_class=tokenizer,
)
trainer.train()
rank = int(os.environ.get("RANK", 0))
params = {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
torch.save({"params": params, "world_size": trainer.accelerator.num_processes}, os.path.join(out_dir, f"rank{rank}.pt"))
