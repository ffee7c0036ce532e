"""A small Llama-architecture decoder (notebook 05): RMSNorm, rotary embeddings, SwiGLU, and the course's
MHA/GQA/MQA attention. Parameter names follow Hugging Face's LlamaForCausalLM so weights convert by name.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import GroupedQueryAttention, check_attention_mask, make_mask
from .heads import HeadConfig, check_int
from .kv_cache import KVCache
from .latent import LatentAttention, check_latent
from .rotary import Rotary


@dataclass
class ModelConfig:
    n_layers: int = 4
    d_model: int = 256
    n_heads: int = 8
    n_kv_heads: int | None = None  # None: MHA
    head_dim: int | None = None  # None: d_model // n_heads
    vocab_size: int = 512
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    d_ff: int | None = None  # SwiGLU hidden width; None: about 8/3 d_model, rounded up to a multiple of 32
    tie_embeddings: bool = False
    # Beyond MQA (notebook 11). MLA: a latent of kv_lora_rank numbers and one rotary key of rope_dim per token and
    # layer are cached (latent.py). CLA: kv_share consecutive layers share one K/V, computed by the first of them.
    kv_lora_rank: int | None = None  # None: K/V heads as usual (MHA/GQA/MQA)
    rope_dim: int | None = None  # MLA's rotary key width (even); the rest of each head's query is head_dim wide
    kv_share: int = 1  # 1: every layer has its own K/V; 2: CLA2

    def __post_init__(self):
        heads = HeadConfig(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim)
        self.n_kv_heads, self.head_dim = heads.n_kv_heads, heads.head_dim
        for name in ("n_layers", "vocab_size", "max_seq_len"):
            check_int(name, getattr(self, name))
        self.kv_share = check_int("kv_share", self.kv_share)
        if self.kv_share > self.n_layers:
            raise ValueError(f"kv_share must be between 1 and n_layers={self.n_layers}, got {self.kv_share}")
        if self.kv_lora_rank is not None:
            if self.rope_dim is None:
                raise ValueError("an MLA model (kv_lora_rank set) needs rope_dim, the width of its shared rotary key")
            check_latent(self.kv_lora_rank, self.rope_dim)
            if self.n_kv_heads != self.n_heads:
                raise ValueError(f"MLA up-projects one key and value per query head: leave n_kv_heads None (or "
                                 f"{self.n_heads}), got {self.n_kv_heads}")
            if self.kv_share != 1:
                raise ValueError("MLA with cross-layer sharing (kv_share > 1) is not built here: pick one")
        elif self.rope_dim is not None:
            raise ValueError("rope_dim is MLA's: set kv_lora_rank too, or leave rope_dim None")
        elif self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.d_ff is None:
            self.d_ff = -(-8 * self.d_model // 3 // 32) * 32
        check_int("d_ff", self.d_ff)

    @property
    def kind(self) -> str:
        """MHA, GQA-n, MQA, MLA-r, with "+CLAk" when layers share K/V."""
        base = f"MLA-{self.kv_lora_rank}" if self.kv_lora_rank else HeadConfig(
            self.d_model, self.n_heads, self.n_kv_heads, self.head_dim).kind
        return base + (f"+CLA{self.kv_share}" if self.kv_share > 1 else "")

    def computes_kv(self, layer: int) -> bool:
        """Does this layer compute (and cache) its own K/V? With CLA only the first of each kv_share layers does."""
        return layer % self.kv_share == 0

    @property
    def latent(self) -> tuple | None:
        """(kv_lora_rank, rope_dim) of an MLA model, what its cache holds per token and layer; None otherwise."""
        return (self.kv_lora_rank, self.rope_dim) if self.kv_lora_rank else None

    @property
    def n_kv_layers(self) -> int:
        """Layers that compute and cache K/V: ceil(n_layers / kv_share) (an odd layer count rounds UP)."""
        return -(-self.n_layers // self.kv_share)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 whatever the input dtype (as Llama does)."""

    def __init__(self, dim, eps=1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff, device=None, dtype=None):
        super().__init__()
        kw = {"bias": False, "device": device, "dtype": dtype}
        self.gate_proj, self.up_proj = nn.Linear(d_model, d_ff, **kw), nn.Linear(d_model, d_ff, **kw)
        self.down_proj = nn.Linear(d_ff, d_model, **kw)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None, layer: int = 0):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps, device, dtype)
        if cfg.kv_lora_rank:
            self.self_attn = LatentAttention(cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.kv_lora_rank, cfg.rope_dim,
                                             device=device, dtype=dtype)
        else:
            self.self_attn = GroupedQueryAttention(cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                                                   device=device, dtype=dtype, computes_kv=cfg.computes_kv(layer))
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps, device, dtype)
        self.mlp = SwiGLU(cfg.d_model, cfg.d_ff, device, dtype)

    def forward(self, x, rope, mask, layer_cache=None, start=0, shared_kv=None):
        """-> (x, the K/V its attention read: what a cross-layer-attention layer above reuses)."""
        kv = []
        x = x + self.self_attn(self.input_layernorm(x), rope=rope, cache=layer_cache, start=start, mask=mask,
                               shared_kv=shared_kv, kv_out=kv)
        return x + self.mlp(self.post_attention_layernorm(x)), kv[0]


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model, device=device, dtype=dtype)
        self.layers = nn.ModuleList(Block(cfg, device, dtype, layer=i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps, device, dtype)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False, device=device, dtype=dtype)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.rotary = Rotary(cfg.rope_dim or cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, device)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def device(self):
        return self.embed_tokens.weight.device

    def _check_tokens(self, tokens):
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.long, torch.int32, torch.int64):
            raise TypeError(f"tokens must be an integer torch.Tensor of shape (batch, seq), got "
                            f"{type(tokens).__name__} {getattr(tokens, 'dtype', '')}")
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"tokens must have shape (batch, seq) with seq >= 1, got {tuple(tokens.shape)}")
        if tokens.device != self.device:
            raise ValueError(f"tokens are on {tokens.device} but the model is on {self.device}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.vocab_size:
            raise ValueError(f"token ids must be in [0, vocab_size={self.cfg.vocab_size}), got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")

    def forward(self, tokens, attention_mask=None, cache: KVCache | None = None, last_only: bool = False):
        """tokens (batch, t) -> logits (batch, t, vocab) [or (batch, 1, vocab) with last_only].

        attention_mask (batch, t): 1 for real tokens, 0 for (left) padding. With a cache, the t tokens follow the ones
        already cached: their rotary positions continue each row's count of real tokens.
        """
        self._check_tokens(tokens)
        b, t = tokens.shape
        am = (torch.ones(b, t, dtype=torch.bool, device=tokens.device) if attention_mask is None
              else check_attention_mask(attention_mask, b, t, tokens.device))
        if cache is None:
            if t > self.cfg.max_seq_len:
                raise ValueError(f"sequence length {t} exceeds max_seq_len={self.cfg.max_seq_len}")
            return self._run(tokens, 0, (am.long().cumsum(1) - 1).clamp(min=0), am, not bool(am.all()), None,
                             last_only)
        cache.check_fits(self.cfg)
        start, positions, key_mask = cache.reserve(am)  # checks everything first; from here the cache has moved
        try:
            return self._run(tokens, start, positions, key_mask, cache.has_padding, cache, last_only)
        except BaseException:  # whatever stopped this call (even Ctrl-C), leave the cache as it was before it
            cache.truncate(start)
            raise

    def _run(self, tokens, start, positions, key_mask, has_padding, cache, last_only):
        t = tokens.shape[1]
        # A single new token after an unpadded prefix sees every cached slot: no mask needed at all.
        mask = None if (t == 1 and not has_padding) else make_mask(
            t, start + t, q_start=start, attention_mask=key_mask if has_padding else None, device=tokens.device)
        return self._layers(tokens, positions, mask, cache, start, last_only)

    def decode_step(self, tokens, positions, slot, key_mask, cache: KVCache):
        """One decode step whose shapes never change, so ``torch.compile`` builds it once (notebook 12; gpt-fast's
        route). Everything that moves from step to step is a tensor: tokens (batch, 1), their rotary ``positions``
        (batch, 1), the cache ``slot`` they are written to (a long tensor of one element) and ``key_mask`` (batch,
        max_len), the cache's whole mask with the new slot already True. Attention reads all max_len slots of the
        static cache, with the unfilled ones masked: more bytes than the eager step reads, in exchange for one graph.
        No checks run here (they would be Python branches on values): ``generate(compile=...)`` makes them, and
        books the step in the cache, before calling it. Returns logits (batch, 1, vocab)."""
        return self._layers(tokens, positions, key_mask[:, None, None, :], cache, slot, last_only=True)

    def _layers(self, tokens, positions, mask, cache, start, last_only):
        x = self.embed_tokens(tokens)
        rope = self.rotary(positions, x.dtype)
        kv = None
        for i, layer in enumerate(self.layers):
            own = self.cfg.computes_kv(i)  # with CLA, the other layers read the K/V of the last one that computed
            layer_cache = cache.layers[i // self.cfg.kv_share] if cache is not None and own else None
            x, kv = layer(x, rope, mask, layer_cache, start, shared_kv=None if own else kv)
        if last_only:
            x = x[:, -1:]
        return self.logits(self.norm(x))

    def logits(self, x):
        """The output projection. A decode step has only a few rows against a vocab-sized weight; on a CPU the BLAS
        spreads W @ x^T (tall, over vocab rows) across cores far better than x @ W^T (benchmarks/decode_bench.py)."""
        rows = x.shape[0] * x.shape[1]
        if x.device.type == "cpu" and rows <= 16:
            w = self.lm_head.weight
            return (w @ x.reshape(rows, -1).T).T.reshape(*x.shape[:2], w.shape[0])
        return self.lm_head(x)


def next_step_mask(cache, attention_mask=None):
    """The mask the next call of a model with ``cache`` builds for its new tokens, computed without touching the
    cache: (batch, 1, t, length + t), True where a query may read a slot. ``attention_mask`` (batch, t): the new
    tokens (default: one real token per row, a decode step). The new tokens' own slots are written before attention
    runs, so a decode step's query reads its own slot too (j <= i). Notebook 05 draws it; a test checks it against
    the mask the model really builds."""
    b = cache.batch
    new = (torch.ones(b, 1, dtype=torch.bool, device=cache.device) if attention_mask is None
           else attention_mask.to(device=cache.device, dtype=torch.bool))
    start, t = cache.length, new.shape[1]
    key_mask = torch.cat([cache.key_mask[:, :start], new], dim=1)
    return make_mask(t, start + t, q_start=start, attention_mask=key_mask, device=cache.device)
