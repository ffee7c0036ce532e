"""The trade-off study behind notebooks 08, 09 and 11, reproducible with one command:

    python -m mqa_edu.studies tradeoff            # the study the notebooks show (about 90 min on 2 CPU cores)
    python -m mqa_edu.studies tradeoff --quick    # the same pipeline at toy sizes, about 2 minutes
    python -m mqa_edu.studies tradeoff --size gpu # larger models (the default where CUDA is available)
    python -m mqa_edu.studies smollm2             # notebook 10's SmolLM2 -> MQA study (see smollm2.py)

What it does, for two tasks (Austen text, byte-level; multi-query associative recall):
1. sweeps n_kv_heads over every divisor of n_heads, with several seeds, in two comparisons (Shazeer 2019):
   "same" keeps the architecture and drops K/V heads; "matched" widens the MLP to give back the K/V parameters;
2. converts the seed-0 multi-head text model to GQA and MQA (mean-pooled, first head, random K/V) and uptrains each
   for 5%, 10% and 20% of the original steps (Ainslie et al. 2023);
3. compares grouping heads by similarity with contiguous groups and with random groupings (a permutation test);
4. trains notebook 11's designs, MLA at three latent sizes and CLA2 over MHA and MQA, with the same seeds and steps
   (``--only beyond`` adds them to an existing file).

It writes ``tradeoff.json`` (every curve and number, with seeds, steps, wall times and versions) and the fp16
checkpoints the notebooks load, into ``--out`` (default: the results that ship with the package).
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..convert import POOLING, contiguous_groups, similarity_groups, to_grouped
from ..data import VOCAB_SIZE, RecallTask, austen_splits, text_batch
from ..device import describe_environment, pick_device
from ..heads import divisors, kv_cache_elements
from ..model import ModelConfig, Transformer
from ..train import TrainConfig, environment, loss_on, save_checkpoint, train
from .results import RESULTS_DIR, read_results

RESULTS_FILE = "tradeoff.json"
CACHE_BYTES = 2  # fp16 K/V, as served

# Sizes. "cpu" is what ships (2 CPU cores, about 90 minutes); "quick" checks the pipeline; "gpu" is larger.
SIZES = {
    "quick": {
        "text": {"model": dict(n_layers=2, d_model=32, n_heads=4), "seq_len": 32, "batch": 8,
                 "train": dict(steps=24, warmup=4, lr=3e-3, eval_every=8, eval_batches=2), "max_bytes": 200_000},
        "recall": {"model": dict(n_layers=1, d_model=16, n_heads=4), "task": dict(n_pairs=4, n_queries=4, n_keys=8,
                                                                                 n_values=8, pair_tokens=True),
                   "batch": 16, "train": dict(steps=24, warmup=4, lr=3e-3, eval_every=8, eval_batches=2)},
        "seeds": [0, 1], "final_batches": 4, "fractions": [0.05, 0.1, 0.2], "random_groupings": 4,
    },
    "cpu": {
        "text": {"model": dict(n_layers=2, d_model=128, n_heads=8), "seq_len": 128, "batch": 16,
                 "train": dict(steps=600, warmup=40, lr=3e-3, eval_every=50, eval_batches=8), "max_bytes": None},
        # head_dim 4: the K/V heads are narrow, so how many of them there are matters (see data.RecallTask)
        "recall": {"model": dict(n_layers=1, d_model=32, n_heads=8), "task": dict(n_pairs=16, n_queries=16,
                                                                                 n_keys=32, n_values=64,
                                                                                 pair_tokens=True),
                   "batch": 64, "train": dict(steps=1500, warmup=30, lr=3e-3, eval_every=100, eval_batches=4),
                   # the recall models are tiny: five seeds, so that a two-sided Welch test has df near 4, not 2
                   "seeds": [0, 1, 2, 3, 4]},
        "seeds": [0, 1, 2], "final_batches": 32, "fractions": [0.05, 0.1, 0.2], "random_groupings": 30,
    },
    "gpu": {
        "text": {"model": dict(n_layers=4, d_model=256, n_heads=8), "seq_len": 256, "batch": 64,
                 "train": dict(steps=3000, warmup=150, lr=2e-3, eval_every=200, eval_batches=16), "max_bytes": None},
        "recall": {"model": dict(n_layers=1, d_model=64, n_heads=8), "task": dict(n_pairs=32, n_queries=32,
                                                                                 n_keys=64, n_values=128,
                                                                                 pair_tokens=True),
                   "batch": 256, "train": dict(steps=4000, warmup=200, lr=2e-3, eval_every=250, eval_batches=8)},
        "seeds": [0, 1, 2, 3, 4], "final_batches": 64, "fractions": [0.05, 0.1, 0.2], "random_groupings": 100,
    },
}


def matched_d_ff(cfg: ModelConfig, n_kv_heads: int) -> int:
    """The SwiGLU width that gives back the K/V parameters dropped by going from n_heads to n_kv_heads K/V heads
    (2 * d_model * head_dim per K/V head removed; the MLP has 3 * d_model weights per unit of width)."""
    saved = 2 * cfg.d_model * cfg.head_dim * (cfg.n_heads - n_kv_heads)
    return cfg.d_ff + round(saved / (3 * cfg.d_model))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class Task:
    """One task's batches, model base configuration and scoring."""

    def __init__(self, name: str, size: dict, device):
        self.name, self.size, self.device = name, size, device
        s = size[name]
        if name == "text":
            splits = austen_splits(max_bytes=s["max_bytes"])
            self.data = {"train": splits.train, "val": splits.val}
            self.vocab, self.seq_len = VOCAB_SIZE, s["seq_len"]
            self.source = {"train_novels": list(splits.train_novels), "val_novels": list(splits.val_novels),
                           "train_bytes": splits.train.numel(), "val_bytes": splits.val.numel()}
        else:
            self.task = RecallTask(**s["task"])
            self.vocab, self.seq_len = self.task.vocab_size, self.task.seq_len
            self.source = asdict(self.task)
        self.base = ModelConfig(vocab_size=self.vocab, max_seq_len=self.seq_len, **s["model"])

    def batch(self, split: str):
        s = self.size[self.name]

        def make(g):
            if self.name == "text":
                x, y = text_batch(self.data[split], s["batch"], self.seq_len, g)
            else:  # the recall task is generated: validation draws come from another stream of the generator
                x, y = self.task.batch(s["batch"], g)
            return x.to(self.device), y.to(self.device)
        return make

    def train_config(self, seed: int, fraction: float = 1.0) -> TrainConfig:
        t = dict(self.size[self.name]["train"])
        t["steps"] = max(1, round(t["steps"] * fraction))
        t["warmup"] = max(1, round(t["warmup"] * fraction))
        t["eval_every"] = max(1, min(t["eval_every"], t["steps"] // 4 or 1))
        return TrainConfig(seed=seed, batch=self.size[self.name]["batch"], **t)

    def final_batches(self):
        """Fixed validation batches (seed 12345) shared by every model of the study, so losses compare directly."""
        g = torch.Generator().manual_seed(12345 if self.name == "text" else 54321)
        return [self.batch("val")(g) for _ in range(self.size["final_batches"])]

    @torch.no_grad()
    def score(self, model, batches) -> dict:
        model.eval()
        out = {"val_loss": round(sum(loss_on(model, x, y).item() for x, y in batches) / len(batches), 5)}
        if self.name == "recall":
            right = total = 0
            for x, y in batches:
                scored = y != -100
                right += (model(x).argmax(-1)[scored] == y[scored]).sum().item()
                total += scored.sum().item()
            out["accuracy"] = round(right / total, 5)
        return out


def task_seeds(sizes: dict, name: str) -> list:
    """The seeds of one task's sweep: its own list where it has one (recall, whose models are tiny), else the
    study's."""
    return list(sizes[name].get("seeds", sizes["seeds"]))


def sweep(task: Task, seeds, progress, log) -> tuple[list, dict]:
    """Train every (comparison, n_kv_heads, seed); return the runs and the seed-0 models worth keeping."""
    runs, keep = [], {}
    final = task.final_batches()
    kvs = divisors(task.base.n_heads)[::-1]
    for comparison in ("same", "matched"):
        for kv in kvs:
            if comparison == "matched" and kv == task.base.n_heads:
                continue  # the multi-head model is its own parameter-matched twin
            cfg = replace(task.base, n_kv_heads=kv,
                          d_ff=matched_d_ff(task.base, kv) if comparison == "matched" else task.base.d_ff)
            for seed in seeds:
                torch.manual_seed(seed)
                model = Transformer(cfg, device=task.device)
                rec = train(model, task.train_config(seed), task.batch("train"), task.batch("val"), progress)
                run = {"task": task.name, "comparison": comparison, "n_kv_heads": kv, "seed": seed,
                       "d_ff": cfg.d_ff, "params": n_params(model),
                       "kv_bytes_per_token": kv_cache_elements(kv, cfg.head_dim, n_layers=cfg.n_layers) * CACHE_BYTES,
                       "steps": rec["config"]["steps"], "wall_seconds": rec["wall_seconds"], "val_curve": rec["val"],
                       "train_loss_every_10": rec["train_loss"][::10], **task.score(model, final)}
                runs.append(run)
                log(f"{task.name:6s} {comparison:7s} n_kv_heads={kv} seed={seed}: " + ", ".join(
                    f"{k} {run[k]}" for k in ("val_loss", "accuracy") if k in run) + f" ({rec['wall_seconds']} s)")
                if seed == seeds[0] and comparison == "same" and kv in (task.base.n_heads, 1):
                    keep[kv] = (model, rec)
    return runs, keep


def beyond_designs(base: ModelConfig) -> tuple[dict, list]:
    """Notebook 11's designs for a task's base model: MLA at three latent sizes (head_dim, 2 and 4 x head_dim, with a
    rotary key of head_dim / 2) and CLA2 over MHA and over MQA. Returns ({name: config changes}, [(name, why not)]):
    CLA needs at least two layers to share between."""
    hd, designs, skipped = base.head_dim, {}, []
    for mult in (1, 2, 4):
        designs[f"MLA-{mult * hd}"] = dict(kv_lora_rank=mult * hd, rope_dim=max(2, hd // 2), n_kv_heads=None)
    for kv, name in ((base.n_heads, "MHA+CLA2"), (1, "MQA+CLA2")):
        if base.n_layers >= 2:
            designs[name] = dict(n_kv_heads=kv, kv_share=2)
        else:
            skipped.append((name, f"the model has {base.n_layers} layer: cross-layer sharing needs two"))
    return designs, skipped


def cache_bytes_per_token(cfg: ModelConfig) -> int:
    """K/V bytes one token adds (fp16, every caching layer): the one formula, with MLA's latent and CLA's layers."""
    latent = cfg.kv_lora_rank + cfg.rope_dim if cfg.kv_lora_rank else None
    return kv_cache_elements(cfg.n_kv_heads, cfg.head_dim, n_layers=cfg.n_kv_layers, latent=latent) * CACHE_BYTES


def beyond(task: Task, seeds, progress, log) -> dict:
    """Train notebook 11's designs (MLA, CLA) on the task with the sweep's seeds, steps and schedule."""
    started = time.perf_counter()
    final = task.final_batches()
    designs, skipped = beyond_designs(task.base)
    runs = []
    for name, changes in designs.items():
        cfg = replace(task.base, **changes)
        for seed in seeds:
            torch.manual_seed(seed)
            model = Transformer(cfg, device=task.device)
            rec = train(model, task.train_config(seed), task.batch("train"), task.batch("val"), progress)
            runs.append({"task": task.name, "comparison": "beyond", "design": name, "n_kv_heads": cfg.n_kv_heads,
                         "kv_lora_rank": cfg.kv_lora_rank, "rope_dim": cfg.rope_dim, "kv_share": cfg.kv_share,
                         "seed": seed, "params": n_params(model), "kv_bytes_per_token": cache_bytes_per_token(cfg),
                         "steps": rec["config"]["steps"], "wall_seconds": rec["wall_seconds"],
                         "val_curve": rec["val"], **task.score(model, final)})
            scores = ", ".join(f"{k} {runs[-1][k]}" for k in ("val_loss", "accuracy") if k in runs[-1])
            log(f"{task.name:6s} {name:9s} seed={seed}: {scores} ({rec['wall_seconds']} s)")
    return {"runs": runs, "not_applicable": [{"task": task.name, "design": n, "why": why} for n, why in skipped],
            "wall_seconds": round(time.perf_counter() - started, 1)}


def kv_similarity(model, tokens) -> torch.Tensor:
    """(n_layers, n_heads, n_heads): how alike the heads' keys and values are (mean of the two linear CKAs)."""
    from ..redundancy import head_internals, head_similarity

    inside = head_internals(model, tokens)
    return 0.5 * (head_similarity(inside, "keys", "cka") + head_similarity(inside, "values", "cka"))


def convert_and_uptrain(task: Task, mha, seeds, fractions, n_random, progress, log) -> dict:
    """Convert the trained MHA model to each smaller n_kv_heads, by each pooling; uptrain; group by similarity."""
    final = task.final_batches()
    n_heads = task.base.n_heads
    out = {"source": {"n_kv_heads": n_heads, "seed": seeds[0], **task.score(mha, final)}, "conversions": [],
           "groupings": []}
    targets = [kv for kv in divisors(n_heads) if kv < n_heads][::-1]
    for kv in targets:
        for pooling in POOLING:
            converted = to_grouped(mha, kv, pooling, seed=seeds[0])
            entry = {"n_kv_heads": kv, "pooling": pooling, "at_conversion": task.score(converted, final),
                     "uptrained": []}
            for frac in fractions:
                model = copy.deepcopy(converted)
                rec = train(model, task.train_config(seeds[0], frac), task.batch("train"), task.batch("val"), progress)
                entry["uptrained"].append({"fraction": frac, "steps": rec["config"]["steps"],
                                           "wall_seconds": rec["wall_seconds"], "val_curve": rec["val"],
                                           **task.score(model, final)})
            out["conversions"].append(entry)
            log(f"convert n_kv_heads={kv} {pooling:6s}: {entry['at_conversion']['val_loss']} at conversion, "
                + ", ".join(f"{u['fraction']:.0%} -> {u['val_loss']}" for u in entry["uptrained"]))
    # Grouping: contiguous vs by similarity of keys/values vs random equal-size groupings (mean pooling).
    g = torch.Generator().manual_seed(777)
    tokens = torch.cat([task.batch("val")(g)[0] for _ in range(2)])
    sim = kv_similarity(mha, tokens)
    for kv in targets:
        if kv == 1:
            continue  # a single group: every grouping is the same
        by_sim = [similarity_groups(sim[i], kv) for i in range(task.base.n_layers)]
        contiguous = contiguous_groups(n_heads, kv)
        rng = torch.Generator().manual_seed(99 + kv)
        random_losses = []
        for _ in range(n_random):
            groupings = []
            for _layer in range(task.base.n_layers):
                perm = torch.randperm(n_heads, generator=rng).tolist()
                groupings.append([sorted(perm[j * (n_heads // kv):(j + 1) * (n_heads // kv)]) for j in range(kv)])
            random_losses.append(task.score(to_grouped(mha, kv, "mean", groupings), final)["val_loss"])
        sim_loss = task.score(to_grouped(mha, kv, "mean", by_sim), final)["val_loss"]
        contiguous_loss = task.score(to_grouped(mha, kv, "mean", contiguous), final)["val_loss"]
        # one-sided permutation test: how often does a random grouping do at least as well as the similarity one?
        p = (1 + sum(r <= sim_loss for r in random_losses)) / (1 + len(random_losses))
        out["groupings"].append({"n_kv_heads": kv, "similarity_groups": by_sim, "similarity_loss": sim_loss,
                                 "contiguous_loss": contiguous_loss, "random_losses": random_losses,
                                 "p_value": round(p, 4)})
        log(f"grouping n_kv_heads={kv}: similarity {sim_loss}, contiguous {contiguous_loss}, random median "
            f"{sorted(random_losses)[len(random_losses) // 2]}, p = {p:.3f}")
    out["similarity"] = sim.tolist()
    return out


def scratch_same_budget(task: Task, seeds, fractions, progress, log) -> dict:
    """The fair baseline for uptraining: for each smaller n_kv_heads and each uptraining budget, models trained from
    scratch for the same number of steps, each with its own full schedule (warm-up and cosine decay over those steps),
    not a point midway through a longer run's schedule."""
    started = time.perf_counter()
    final = task.final_batches()
    runs = []
    for kv in [kv for kv in divisors(task.base.n_heads) if kv < task.base.n_heads][::-1]:
        cfg = replace(task.base, n_kv_heads=kv)
        for frac in fractions:
            for seed in seeds:
                torch.manual_seed(seed)
                model = Transformer(cfg, device=task.device)
                rec = train(model, task.train_config(seed, frac), task.batch("train"), task.batch("val"), progress)
                runs.append({"n_kv_heads": kv, "fraction": frac, "steps": rec["config"]["steps"], "seed": seed,
                             "wall_seconds": rec["wall_seconds"], **task.score(model, final)})
            vals = [r["val_loss"] for r in runs[-len(seeds):]]
            log(f"from scratch, n_kv_heads={kv}, {runs[-1]['steps']} steps with its own schedule: {vals}")
    return {"runs": runs, "wall_seconds": round(time.perf_counter() - started, 1)}


def summarize(runs) -> list[dict]:
    """Mean and sample standard deviation of the final validation loss (and accuracy) per cell of the sweep."""
    cells = {}
    for r in runs:
        cells.setdefault((r["task"], r["comparison"], r["n_kv_heads"]), []).append(r)
    table = []
    for (task, comparison, kv), rs in cells.items():
        row = {"task": task, "comparison": comparison, "n_kv_heads": kv, "seeds": len(rs), "params": rs[0]["params"],
               "kv_bytes_per_token": rs[0]["kv_bytes_per_token"]}
        for key in ("val_loss", "accuracy"):
            if key in rs[0]:
                vals = [r[key] for r in rs]
                mean = sum(vals) / len(vals)
                sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
                row[key] = {"mean": round(mean, 5), "sd": round(sd, 5), "values": vals}
        table.append(row)
    return table


def tradeoff(size: str = "cpu", out=None, device=None, progress: bool = False, log=print) -> dict:
    """Run the whole study; write ``tradeoff.json`` and the notebooks' checkpoints to ``out``; return the results."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    sz = SIZES[size]
    out = Path(out) if out is not None else RESULTS_DIR
    device = device if isinstance(device, torch.device) else pick_device(device or "auto")
    started = time.perf_counter()
    results = {"format": "mqa_edu.tradeoff/1", "size": size, "sizes": sz, "device": str(device),
               "command": "python -m mqa_edu.studies tradeoff" + ("" if size == "cpu" else f" --size {size}"),
               "environment": {**environment(), **describe_environment()}, "tasks": {}, "runs": []}
    checkpoints = {}
    for name in ("text", "recall"):
        task = Task(name, sz, device)
        results["tasks"][name] = {"model": asdict(task.base), "source": task.source,
                                  "train": asdict(task.train_config(0))}
        runs, keep = sweep(task, task_seeds(sz, name), progress, log)
        results["runs"] += runs
        if name == "text":
            mha, _ = keep[task.base.n_heads]
            results["conversion"] = convert_and_uptrain(task, mha, sz["seeds"], sz["fractions"],
                                                        sz["random_groupings"], progress, log)
            results["conversion"]["scratch_same_budget"] = scratch_same_budget(task, sz["seeds"], sz["fractions"],
                                                                               progress, log)
        for kv, (model, rec) in keep.items():
            checkpoints[f"{name}_{'mha' if kv == task.base.n_heads else 'mqa'}_seed{sz['seeds'][0]}"] = (model, rec)
    results["table"] = summarize(results["runs"])
    results["beyond"] = beyond_all(size, sz, device, progress, log)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    for stem, (model, rec) in checkpoints.items():
        save_checkpoint(out / f"{stem}.safetensors", model, {k: rec[k] for k in ("config", "val", "wall_seconds")},
                        dtype=torch.float16)
    results["checkpoints"] = sorted(f"{stem}.safetensors" for stem in checkpoints)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    log(f"wrote {out / RESULTS_FILE} and {len(checkpoints)} checkpoints in {results['wall_seconds']} s")
    return results


def add_scratch_baselines(out=None, device=None, progress: bool = False, log=print) -> dict:
    """Run only :func:`scratch_same_budget` with the sizes an existing ``tradeoff.json`` recorded, and add it to that
    file (the full study runs it too). The results keep the seeds, steps, wall time and command of this part."""
    path = Path(out) if out is not None else RESULTS_DIR
    results = load_results(path)
    folder = Path(results.pop("folder"))
    device = device if isinstance(device, torch.device) else pick_device(device or "auto")
    sz = results["sizes"]
    task = Task("text", sz, device)
    part = scratch_same_budget(task, sz["seeds"], sz["fractions"], progress, log)
    part["command"] = "python -m mqa_edu.studies tradeoff --only scratch-baselines" + (
        "" if out is None else f" --out {out}")
    part["environment"] = {**environment(), **describe_environment()}
    results["conversion"]["scratch_same_budget"] = part
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    log(f"added the same-budget baselines to {folder / RESULTS_FILE} in {part['wall_seconds']} s")
    return results


def add_seeds(name: str, out=None, device=None, progress: bool = False, log=print) -> dict:
    """Train the seeds of task ``name`` that an existing ``tradeoff.json`` lacks (its sizes' list, for example after
    recall went from 3 seeds to 5), add their runs, and recompute the summary table. Every run is deterministic given
    its seed, so the file is what the full study would write with the longer list."""
    path = Path(out) if out is not None else RESULTS_DIR
    results = load_results(path)
    folder = Path(results.pop("folder"))
    device = device if isinstance(device, torch.device) else pick_device(device or "auto")
    results["sizes"] = SIZES[results["size"]]
    have = {r["seed"] for r in results["runs"] if r["task"] == name}
    new = [s for s in task_seeds(results["sizes"], name) if s not in have]
    started = time.perf_counter()
    task = Task(name, results["sizes"], device)
    runs, _ = sweep(task, new, progress, log)
    results["runs"] += runs
    results["table"] = summarize(results["runs"])
    results.setdefault("parts", []).append({
        "command": f"python -m mqa_edu.studies tradeoff --only {name}-seeds" + ("" if out is None else f" --out {out}"),
        "task": name, "seeds": new, "wall_seconds": round(time.perf_counter() - started, 1),
        "environment": {**environment(), **describe_environment()}})
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    log(f"added {name} seeds {new} to {folder / RESULTS_FILE} in {results['parts'][-1]['wall_seconds']} s")
    return results


def beyond_all(size: str, sz: dict, device, progress, log) -> dict:
    """The beyond-MQA part for both tasks, as the full study and ``--only beyond`` write it."""
    part = {"runs": [], "not_applicable": [], "environment": {**environment(), **describe_environment()}}
    started = time.perf_counter()
    for name in ("text", "recall"):
        task = Task(name, sz, device)
        got = beyond(task, task_seeds(sz, name), progress, log)
        part["runs"] += got["runs"]
        part["not_applicable"] += got["not_applicable"]
    part["wall_seconds"] = round(time.perf_counter() - started, 1)
    return part


def add_beyond(out=None, device=None, progress: bool = False, log=print) -> dict:
    """Train notebook 11's designs (MLA, CLA) and add them to an existing tradeoff.json, with the same tasks, seeds,
    steps and schedule as its sweep."""
    path = Path(out) if out is not None else RESULTS_DIR
    results = load_results(path)
    folder = Path(results.pop("folder"))
    device = device if isinstance(device, torch.device) else pick_device(device or "auto")
    part = beyond_all(results["size"], results["sizes"], device, progress, log)
    part["command"] = "python -m mqa_edu.studies tradeoff --only beyond" + ("" if out is None else f" --out {out}")
    results["beyond"] = part
    (folder / RESULTS_FILE).write_text(json.dumps(results, indent=1))
    log(f"added the beyond-MQA designs to {folder / RESULTS_FILE} in {part['wall_seconds']} s")
    return results


def load_results(path=None) -> dict:
    """The trade-off study's results: the shipped ones by default, or ``path`` (a tradeoff.json or its folder)."""
    return read_results(path, RESULTS_FILE, "mqa_edu.tradeoff/1", "tradeoff")
