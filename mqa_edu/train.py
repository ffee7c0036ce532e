"""Training the course's model (notebooks 08-09): AdamW, warm-up then cosine decay, gradient clipping, periodic
validation, seeds, and checkpoints that hold their configuration.

Checkpoints are safetensors files: the weights, plus the model configuration and the training record as JSON in the
file's metadata. Nothing is unpickled when one is loaded, and a checkpoint for another configuration is refused with
a message that names what differs.
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .device import seed_everything
from .heads import check_int
from .model import ModelConfig, Transformer


@dataclass
class TrainConfig:
    steps: int = 200
    batch: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batches: int = 8
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch", "eval_every", "eval_batches"):
            check_int(name, getattr(self, name))
        check_int("warmup", self.warmup, minimum=0)
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1 or self.grad_clip <= 0:
            raise ValueError("lr must be > 0, min_lr_ratio in [0, 1] and grad_clip > 0, got "
                             f"lr={self.lr}, min_lr_ratio={self.min_lr_ratio}, grad_clip={self.grad_clip}")


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr * cfg.min_lr_ratio at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def loss_on(model: Transformer, inputs, targets) -> torch.Tensor:
    """Mean next-token cross-entropy (nats); targets of -100 are not scored."""
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def train_step(model: Transformer, optimizer, inputs, targets, grad_clip: float, params=None) -> float:
    """One step: forward, mean next-token loss, backward, clip the gradient norm, optimizer step. Returns the loss.
    The gradients are zeroed first, because backward adds to them. ``params``: the ones to clip (default: all)."""
    loss = loss_on(model, inputs, targets)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the training loss became {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters() if params is None else params, grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: Transformer, make_batch, n_batches: int, generator: torch.Generator) -> float:
    was_training = model.training
    model.eval()
    losses = [loss_on(model, *make_batch(generator)).item() for _ in range(n_batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def train(model: Transformer, cfg: TrainConfig, train_batch, val_batch, progress: bool = True, step_fn=None) -> dict:
    """Train in place. ``train_batch(generator)`` / ``val_batch(generator)`` return (inputs, targets) on the model's
    device. ``step_fn(model, optimizer, inputs, targets, grad_clip) -> loss``: a training step of your own (the
    learner's, notebook 09), in place of :func:`train_step`. Returns the record: steps, seed, losses, wall time,
    versions."""
    seed_everything(cfg.seed)
    g_train = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]  # frozen weights (uptrain.py) are left out
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    record = {"train_loss": [], "val": [], "config": asdict(cfg)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, unit="step", leave=False)
    start = time.perf_counter()
    model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        try:
            inputs, targets = train_batch(g_train)
            loss = (train_step(model, opt, inputs, targets, cfg.grad_clip, params) if step_fn is None
                    else float(step_fn(model, opt, inputs, targets, cfg.grad_clip)))
        except FloatingPointError as e:
            raise FloatingPointError(f"{e} at step {step}: lower lr (now {cfg.lr})") from None
        record["train_loss"].append(round(loss, 5))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val = evaluate(model, val_batch, cfg.eval_batches, torch.Generator().manual_seed(cfg.seed + 1))
            record["val"].append({"step": step + 1, "loss": round(val, 5)})
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.3f}")
    if bar:
        bar.close()
    model.eval()
    record.update(wall_seconds=round(time.perf_counter() - start, 2), environment=environment())
    return record


def environment() -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: safetensors weights + JSON configuration and record, nothing unpickled
# ---------------------------------------------------------------------------------------------------------------

def save_checkpoint(path, model: Transformer, record: dict | None = None, dtype=None):
    """Write ``model`` to ``path`` (.safetensors). ``dtype`` (e.g. torch.float16) stores the weights smaller."""
    from safetensors.torch import save_file

    state = {k: v.detach().to(dtype or v.dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as the embedding: stored once
    meta = {"format": "mqa_edu.checkpoint/1", "model_config": json.dumps(asdict(model.cfg)),
            "record": json.dumps(record or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def read_checkpoint_config(path) -> tuple[ModelConfig, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "mqa_edu.checkpoint/1":
        raise ValueError(f"{path} is not an mqa_edu checkpoint (no 'format' metadata); refusing to guess its layout")
    return ModelConfig(**json.loads(meta["model_config"])), json.loads(meta.get("record", "{}"))


def load_checkpoint(path, expect: ModelConfig | None = None, dtype=torch.float32, device=None):
    """(model, record) from a checkpoint. With ``expect``, a checkpoint of another configuration is refused and the
    message names each field that differs (another vocabulary, other head counts...)."""
    from safetensors.torch import load_file

    cfg, record = read_checkpoint_config(path)
    if expect is not None:
        diff = {k: (v, getattr(cfg, k)) for k, v in asdict(expect).items() if getattr(cfg, k) != v}
        if diff:
            raise ValueError(f"{path} was saved for another model configuration: " + ", ".join(
                f"{k}={got} (expected {want})" for k, (want, got) in diff.items()))
    model = Transformer(cfg, dtype=dtype)
    state = load_file(str(path))
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not match its configuration: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), record


__all__ = ["TrainConfig", "learning_rate", "loss_on", "evaluate", "train", "save_checkpoint", "load_checkpoint",
           "read_checkpoint_config", "environment"]
