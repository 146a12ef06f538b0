from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from ._native import load_diffusion_tokenizer
from .diffusion_lm import MaskedDiffusionAdapter, add_diffusion_scoring, diffusion_stop_token_ids
from .dream import DreamBaseModel, DreamConfig, DreamModel
from .llada import LLaDAConfig, LLaDAModel, LLaDAModelLM
from .llamagen import LlamaGenConfig, LlamaGenForImageGeneration, LlamaGenKVCache

# The published Dream/DiffuCoder and LLaDA checkpoints name these model types in their config.json; registering them
# makes `AutoConfig`/`AutoModel`/`AutoModelForCausalLM` (and so TRL's model factory and reference-model creation)
# build the native classes, without `trust_remote_code`.
for _config, _model in ((DreamConfig, DreamModel), (LLaDAConfig, LLaDAModelLM)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForCausalLM.register(_config, _model, exist_ok=True)

__all__ = [
    "DreamBaseModel",
    "DreamConfig",
    "DreamModel",
    "LLaDAConfig",
    "LLaDAModel",
    "LLaDAModelLM",
    "LlamaGenConfig",
    "LlamaGenForImageGeneration",
    "LlamaGenKVCache",
    "MaskedDiffusionAdapter",
    "add_diffusion_scoring",
    "diffusion_stop_token_ids",
    "load_diffusion_tokenizer",
]
