"""The hidden cases of a batch: drawn once per batch from its seed, the same for every submission, chosen so that every
known mistake shows (designed cases, probes, decoys), and the part of them a kernel is given."""
from __future__ import annotations

import json
import random
import secrets
from pathlib import Path

from ..checks.collect import fingerprint, resolve
from ..checks.judging import matches

POOL = 4  # a function question's hidden cases are chosen from this many draws of its generator


def reveals(q, mistake, case) -> bool:
    """Whether ``case`` tells ``mistake`` from the right answer."""
    try:
        return not matches(mistake.fn(*case), q.reference(*case), q.rel_tol)
    except Exception:  # a mistake model that does not apply to this case
        return False


def designed_cases(q, rng) -> list:
    """A question's hidden cases, designed rather than only drawn: from POOL draws of its generator (which already
    mixes its edge cases in), first one case that reveals each known mistake, in the order the mistakes are listed,
    then the rest in the order drawn, as many as one draw gives. So partial credit measures the work, not the luck
    of the draw: every known mistake costs at least one hidden case."""
    first = q.cases(rng, True)
    if q.kind != "function" or not q.mistakes:
        return first
    pool = first + [c for _ in range(POOL - 1) for c in q.cases(rng, True)]
    chosen = []
    for m in q.mistakes:
        hit = next((i for i, c in enumerate(pool) if i not in chosen and reveals(q, m, c)), None)
        if hit is not None:
            chosen.append(hit)
    chosen += [i for i in range(len(pool)) if i not in chosen][:max(0, len(first) - len(chosen))]
    return [pool[i] for i in sorted(chosen)]


def make_cases(exercise, seed: int) -> dict:
    """Per question: the hidden cases, drawn from ``seed``. Every input that a later question builds on (its
    cascade's probes), and its decoys, is a hidden case of the earlier question too, called and judged there like any
    other, in an order shuffled with the rest; ``uses`` says, per case of the later question, which of the earlier
    question's cases it builds on, and ``fixed`` which of a question's cases are such fixed inputs (the rest are drawn
    at random). The kernel is told nothing but the inputs (see :func:`kernel_cases`)."""
    rng = random.Random(seed)
    spec = {q.qid: {"answer_name": q.answer_name, "kind": q.kind, "cases": [list(c) for c in designed_cases(q, rng)]}
            for q in exercise.questions}

    def index(dep, inputs):
        where = dep.setdefault("_where", {json.dumps(c): i for i, c in enumerate(dep["cases"])})
        key = json.dumps(list(inputs))
        if key not in where:
            where[key] = len(dep["cases"])
            dep["cases"].append(list(inputs))
        dep.setdefault("fixed", set()).add(where[key])  # a fixed input, known to anyone who reads the exercise
        return where[key]

    for q in reversed(exercise.questions):  # later first: a question's cases are complete before its own probes
        if q.cascade is None:
            continue
        earlier = exercise.question(q.cascade.on)
        dep = spec[earlier.qid]
        probes = [list(p) for case in spec[q.qid]["cases"] for p in q.cascade.probes(*case)]
        spec[q.qid]["uses"] = [[index(dep, p) for p in q.cascade.probes(*case)] for case in spec[q.qid]["cases"]]
        decoys = [list(d) for d in q.cascade.decoys()]
        for decoy in decoys:
            index(dep, decoy)
        # the stand-in for a raising or missing earlier answer: the reference's values at these inputs only
        inputs = {fingerprint(i): i for i in map(resolve, [*probes, *decoys, *q.cascade.stand_in()])}
        spec[q.qid]["fallback"] = {"name": earlier.answer_name,
                                   "table": [[k, earlier.reference(*i)] for k, i in sorted(inputs.items())]}
    for q in exercise.questions:  # shuffle each question's cases, and point the later questions' uses at the new places
        mine = spec[q.qid]
        mine.pop("_where", None)
        order = list(range(len(mine["cases"])))
        if q.cascade is not None or any(o.cascade and exercise.question(o.cascade.on) is q for o in exercise.questions):
            rng.shuffle(order)
        moved_to = {old: new for new, old in enumerate(order)}
        mine["cases"] = [mine["cases"][i] for i in order]
        mine["fixed"] = sorted(moved_to[i] for i in mine.get("fixed", ()))
        if "uses" in mine:
            mine["uses"] = [mine["uses"][i] for i in order]
        for later in exercise.questions:
            if later.cascade and exercise.question(later.cascade.on) is q:
                spec[later.qid]["uses"] = [[moved_to[i] for i in idx] for idx in spec[later.qid]["uses"]]
    return spec


def kernel_cases(spec: dict) -> dict:
    """What the kernel is told: each answer's name, kind and inputs, and for a later answer the stand-in values of
    the earlier one at the fixed inputs it builds on (used only if the student's earlier function raises there);
    nothing about how they are judged."""
    return {qid: {k: v[k] for k in ("answer_name", "kind", "cases", "fallback") if k in v} for qid, v in spec.items()}


def batch_seed(out: Path, exercise, seed: int | None) -> int:
    """The seed of this batch's hidden cases: ``seed`` if given, else the one this output folder's manifest recorded
    for the same exercise (a term's re-runs meet the same cases), else a fresh one."""
    if seed is not None:
        return seed
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest.get("exercise") == exercise.name and isinstance(manifest.get("seed"), int):
            return manifest["seed"]
    except (OSError, ValueError, AttributeError):
        pass
    return secrets.randbits(63)
