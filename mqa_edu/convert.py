"""Weights between the course's Transformer and Hugging Face's LlamaForCausalLM (same names, same layout).

transformers is imported only inside these functions: it is a test/benchmark dependency, not the course's.
"""
from __future__ import annotations

import torch

from .model import ModelConfig, Transformer


def hf_llama_config(cfg: ModelConfig):
    """The LlamaConfig of the same architecture."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                       num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                       num_key_value_heads=cfg.n_kv_heads, head_dim=cfg.head_dim,
                       max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
                       rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                       tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False,
                       pad_token_id=None, bos_token_id=None, eos_token_id=None)


def _hf_name(name: str) -> str:
    return name if name.startswith("lm_head") else "model." + name


@torch.no_grad()
def to_hf_llama(model: Transformer):
    """A LlamaForCausalLM holding a copy of ``model``'s weights."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(hf_llama_config(model.cfg)).to(dtype=model.embed_tokens.weight.dtype)
    hf_params = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        hf_params[_hf_name(name)].copy_(p)
    return hf.eval()


@torch.no_grad()
def from_hf_llama(hf) -> Transformer:
    """The course's Transformer holding a copy of a LlamaForCausalLM's weights."""
    c = hf.config
    rope = getattr(c, "rope_parameters", None) or {"rope_theta": getattr(c, "rope_theta", 10000.0)}
    cfg = ModelConfig(n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
                      n_kv_heads=c.num_key_value_heads, head_dim=getattr(c, "head_dim", None),
                      vocab_size=c.vocab_size, max_seq_len=c.max_position_embeddings, rope_theta=rope["rope_theta"],
                      norm_eps=c.rms_norm_eps, d_ff=c.intermediate_size, tie_embeddings=c.tie_word_embeddings)
    model = Transformer(cfg, dtype=hf.model.embed_tokens.weight.dtype)
    hf_params = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        p.copy_(hf_params[_hf_name(name)])
    return model.eval()
