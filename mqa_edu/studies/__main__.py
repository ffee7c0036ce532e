"""The studies behind notebooks 08-10, each reproducible with one command (seeds, steps, wall time and versions are
recorded in the JSON it writes):

    python -m mqa_edu.studies tradeoff            # notebooks 08-09 and 11 (about 90 min on 2 CPU cores; --quick: 2)
    python -m mqa_edu.studies smollm2             # notebook 10 (about 35 min on 2 CPU cores; --quick: a minute)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..device import pick_device
from .results import RESULTS_DIR
from .smollm2 import smollm2_study
from .tradeoff import SIZES, add_beyond, add_scratch_baselines, add_seeds, tradeoff


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mqa_edu.studies", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="study", required=True)
    t = sub.add_parser("tradeoff", help="MHA/GQA/MQA sweeps, conversion and uptraining (notebooks 08-09)")
    t.add_argument("--quick", action="store_true", help="toy sizes: checks the pipeline in under 2 minutes")
    t.add_argument("--size", choices=list(SIZES), default=None, help="sizes to run (default: cpu, or quick)")
    t.add_argument("--out", default=None, help="folder for tradeoff.json and checkpoints (default: the package's "
                                               "results/ for --size cpu, ./tradeoff-<size> otherwise)")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: the first available)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    t.add_argument("--progress", action="store_true", help="a tqdm bar per training run")
    t.add_argument("--only", choices=["scratch-baselines", "recall-seeds", "beyond"], default=None,
                   help="run one part and add it to an existing tradeoff.json (--out, default: the shipped one)")
    s = sub.add_parser("smollm2", help="SmolLM2-135M to MQA: greedy layer pooling, K/V-only uptraining (notebook 10)")
    s.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline in about a minute")
    s.add_argument("--size", choices=["quick", "cpu", "gpu"], default=None, help="budget (default: cpu, or quick)")
    s.add_argument("--out", default=None, help="folder for smollm2_mqa.json (default: the package's results/ for "
                                               "--size cpu, ./smollm2-<size> otherwise)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None, help="cuda, mps or cpu (default: the first available)")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.add_argument("--progress", action="store_true", help="a tqdm bar while training")
    args = p.parse_args(argv)
    device = pick_device(args.device or "auto")
    size = args.size or ("quick" if args.quick else "gpu" if device.type == "cuda" else "cpu")  # same names for both
    if args.quick and args.size not in (None, "quick"):
        p.error("--quick and --size disagree")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or (RESULTS_DIR if size == "cpu" else Path(f"{args.study}-{size}"))
    if args.study == "smollm2":
        smollm2_study(size, out, device, args.seed, log=lambda m: print(m, flush=True), progress=args.progress)
        return 0
    if args.only == "scratch-baselines":
        add_scratch_baselines(args.out, device, args.progress, log=lambda m: print(m, flush=True))
        return 0
    if args.only == "beyond":
        add_beyond(args.out, device, args.progress, log=lambda m: print(m, flush=True))
        return 0
    if args.only == "recall-seeds":
        add_seeds("recall", args.out, device, args.progress, log=lambda m: print(m, flush=True))
        return 0
    tradeoff(size, out, device, args.progress, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
