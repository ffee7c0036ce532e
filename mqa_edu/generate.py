"""Prefill, then decode one token at a time (notebook 05). Batched prompts of different lengths are left-padded.

Each row of a batch produces exactly what it would produce alone (tested): rows only meet inside matmuls, padding is
masked out of attention, and rotary positions count each row's real tokens.
"""
from __future__ import annotations

from numbers import Integral

import torch

from .kv_cache import KVCache


def left_pad(prompts, pad_id: int = 0, device=None):
    """list of token-id lists -> tokens (batch, max_len) and attention_mask (batch, max_len), padding on the left."""
    if isinstance(prompts, torch.Tensor):
        prompts = prompts.tolist() if prompts.dim() == 2 else [prompts.tolist()]
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompts must be a non-empty list of token-id lists")
    if all(isinstance(t, Integral) for t in prompts):
        prompts = [list(prompts)]
    for i, p in enumerate(prompts):
        if not isinstance(p, (list, tuple)) or not all(isinstance(t, Integral) and not isinstance(t, bool) for t in p):
            raise TypeError(f"prompts[{i}] must be a list of int token ids, got {p!r:.60}")
        if len(p) == 0:
            raise ValueError(f"prompts[{i}] is empty: every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        tokens[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = True
    return tokens, mask


def sample_next(logits, temperature: float = 0.0, top_k: int | None = None, generator=None):
    """logits (batch, vocab) -> next ids (batch,). temperature 0 is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, Integral) or top_k < 1:
            raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)


# The compiled step's cache length is rounded up to a multiple of this many slots (capped at the model's
# max_seq_len), so prompts and budgets of different lengths share one compiled graph instead of one each.
STATIC_BUCKET = 256


def compile_options(device) -> dict:
    """What ``generate(compile=True)`` passes to torch.compile: on a GPU, mode="reduce-overhead" also replays the
    step as a CUDA graph (one launch instead of hundreds of small ones); on a CPU, the default inductor mode."""
    return {"mode": "reduce-overhead"} if torch.device(device).type == "cuda" else {}


def compiled_step(model, **options):
    """``model.decode_step`` compiled with ``options`` (torch.compile's keyword arguments), built once per model and
    options and kept on the model, so later calls of generate reuse the graph. ``fullgraph=True``: a graph break
    would be a Python branch on a value, exactly what the static step must not have."""
    # Dynamo keeps at most recompile_limit graphs per code object, and every model (another config, another
    # instance) is one more graph of decode_step's code: a course session or the test suite builds dozens.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 1024)
    steps = model.__dict__.setdefault("_compiled_steps", {})
    key = tuple(sorted(options.items(), key=lambda kv: kv[0]))
    if key not in steps:
        steps[key] = torch.compile(model.decode_step, fullgraph=True, dynamic=False, **options)
    return steps[key]


@torch.no_grad()
def generate(model, prompts, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
             seed: int | None = None, stop_tokens=(), pad_id: int = 0, use_cache: bool = True,
             growing_cache: bool = False, prefill_chunk: int | None = None, cache_dtype=None,
             compile: bool | dict = False):
    """Continue each prompt by up to ``max_new_tokens`` tokens; returns a list of new-token lists (stop token
    included when one is produced).

    use_cache=False recomputes the whole sequence at every step (for comparison); growing_cache=True uses a
    torch.cat cache instead of the preallocated one; prefill_chunk feeds the prompt in chunks of that many tokens.
    compile=True runs every decode step through ``model.decode_step`` compiled once (:func:`compiled_step`, with
    :func:`compile_options`); a dict is passed to torch.compile instead (e.g. {"backend": ...}). The prefill stays
    eager: its length changes from call to call. In fp32 the compiled tokens equal the eager ones (tested); in
    bf16/fp16 the static step's longer (masked) reductions round differently, and a near-tie may go the other way.
    """
    if compile is not False and not (compile is True or isinstance(compile, dict)):
        raise ValueError(f"compile must be False, True or a dict of torch.compile options, got {compile!r}")
    if compile is not False and (not use_cache or growing_cache):
        raise ValueError("compile= needs the static cache: use_cache=True and growing_cache=False")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, Integral) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    tokens, mask = left_pad(prompts, pad_id, model.device)
    b, prompt_len = tokens.shape
    total = prompt_len + max_new_tokens
    if total > model.cfg.max_seq_len:
        raise ValueError(f"prompt length {prompt_len} + max_new_tokens {max_new_tokens} = {total} exceeds the "
                         f"model's max_seq_len={model.cfg.max_seq_len}")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(seed)
    stop = set(int(s) for s in stop_tokens)
    out = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool)

    cache, step_fn, slots = None, None, max(total, 1)
    if compile is not False:
        step_fn = compiled_step(model, **(compile_options(model.device) if compile is True else compile))
        slots = min(model.cfg.max_seq_len, -(-slots // STATIC_BUCKET) * STATIC_BUCKET)
    if use_cache:
        cache = KVCache.for_model(model.cfg, b, max_len=slots, device=model.device,
                                  dtype=cache_dtype or model.embed_tokens.weight.dtype, growing=growing_cache)
        chunk = prompt_len if prefill_chunk is None else prefill_chunk
        for s in range(0, prompt_len, chunk):
            logits = model(tokens[:, s:s + chunk], mask[:, s:s + chunk], cache=cache, last_only=True)
    else:
        logits = model(tokens, mask, last_only=True)

    for step in range(max_new_tokens):
        nxt = sample_next(logits[:, -1], temperature, top_k, generator)
        for i, tok in enumerate(nxt.tolist()):
            if not done[i]:
                out[i].append(tok)
                done[i] = tok in stop
        if bool(done.all()) or step == max_new_tokens - 1:  # no forward pass for a token nobody will use
            break
        step_mask = torch.ones(b, 1, dtype=torch.bool, device=model.device)
        if step_fn is not None:
            start, positions, _ = cache.reserve(step_mask)  # the bookkeeping, eagerly; the step sees only tensors
            try:
                logits = step_fn(nxt[:, None], positions, torch.tensor([start], device=model.device),
                                 cache.key_mask, cache)
            except BaseException:
                cache.truncate(start)
                raise
        elif use_cache:
            logits = model(nxt[:, None], step_mask, cache=cache, last_only=True)
        else:
            tokens, mask = torch.cat([tokens, nxt[:, None]], 1), torch.cat([mask, step_mask], 1)
            logits = model(tokens, mask, last_only=True)
    return out
