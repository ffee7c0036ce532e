"""Data for training small models (notebooks 08-09): Jane Austen's novels, byte-level, and a synthetic
multi-query associative recall task.

Text. The six novels ship with the package (mqa_edu/texts/austen/, with their provenance). Tokens are bytes
(vocabulary 256), so no tokenizer has to be trained or trusted. Validation holds out whole novels, so no sentence of
the validation text is ever trained on. Batches are drawn from a seeded generator: the same seed gives the same
batches on any machine.

Recall (Arora et al. 2023, "Zoology"). A sequence lists key-value pairs, then asks for some of the keys again; the
model must answer each query with its value. Harder with more pairs. There the capacity of the K/V heads matters
even in tiny models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .heads import check_int

TEXT_DIR = Path(__file__).resolve().parent / "texts" / "austen"
NOVELS = ("emma", "mansfield_park", "northanger_abbey", "persuasion", "pride_and_prejudice", "sense_and_sensibility")
VOCAB_SIZE = 256  # bytes


def load_novel(name: str) -> str:
    if name not in NOVELS:
        raise ValueError(f"novel must be one of {list(NOVELS)}, got {name!r}")
    return (TEXT_DIR / f"{name}.txt").read_text(encoding="utf-8")


def encode(text: str) -> torch.Tensor:
    """Text -> byte ids (int64)."""
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def decode(ids) -> str:
    """Byte ids -> text (bytes that do not form UTF-8 are replaced)."""
    return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class TextSplits:
    train: torch.Tensor
    val: torch.Tensor
    train_novels: tuple
    val_novels: tuple


def austen_splits(val_novels=("persuasion",), train_novels=None, max_bytes: int | None = None) -> TextSplits:
    """Train on some novels, validate on others (whole novels, so nothing leaks). ``max_bytes`` trims each split
    (for quick runs)."""
    val_novels = tuple(val_novels)
    train_novels = tuple(n for n in NOVELS if n not in val_novels) if train_novels is None else tuple(train_novels)
    for n in (*val_novels, *train_novels):
        if n not in NOVELS:
            raise ValueError(f"novels must be from {list(NOVELS)}, got {n!r}")
    if not val_novels:
        raise ValueError("val_novels is empty: hold out at least one novel for validation")
    if not train_novels:
        raise ValueError("train_novels is empty: keep at least one novel to train on")
    if set(val_novels) & set(train_novels):
        raise ValueError(f"a novel cannot be in both splits: {sorted(set(val_novels) & set(train_novels))}")

    def join(names):
        ids = torch.cat([encode(load_novel(n)) for n in names])
        return ids if max_bytes is None else ids[:check_int("max_bytes", max_bytes)]

    return TextSplits(join(train_novels), join(val_novels), train_novels, val_novels)


def text_batch(ids: torch.Tensor, batch: int, seq_len: int, generator: torch.Generator):
    """Random windows of ``seq_len + 1`` bytes -> (inputs, targets), each (batch, seq_len), targets shifted by one."""
    batch, seq_len = check_int("batch", batch), check_int("seq_len", seq_len)
    if ids.numel() < seq_len + 2:
        raise ValueError(f"the text has {ids.numel()} tokens, too few for seq_len={seq_len}: use a shorter seq_len or "
                         "more text")
    starts = torch.randint(0, ids.numel() - seq_len - 1, (batch,), generator=generator)
    windows = torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


# ---------------------------------------------------------------------------------------------------------------
# Multi-query associative recall
# ---------------------------------------------------------------------------------------------------------------
IGNORE = -100  # target positions that are not scored (cross_entropy's ignore_index)


@dataclass(frozen=True)
class RecallTask:
    """Sequences of ``n_pairs`` key-value pairs, then ``n_queries`` of their keys asked again; only the answers to the
    queries are scored. Keys are drawn without replacement from ``n_keys``, values from ``n_values``.

    Two layouts:

    - ``pair_tokens=False`` (Zoology's): key and value are separate tokens, ``k1 v1 k2 v2 ... | q1 a1 q2 a2``; keys are
      ids [0, n_keys), values [n_keys, n_keys + n_values). A model needs two layers (one to attach each value to the
      key before it, one to look it up: an induction head), and at CPU budgets it learns this slowly.
    - ``pair_tokens=True``: each pair is ONE token (id key * n_values + value), then the queries are key tokens and the
      target at each query is its value's answer token. One attention layer solves it: the query must find the one
      pair token with its key (that is what K has to encode) and carry its value back (what V has to carry), so it
      tests the capacity of the K/V heads directly, and a small model learns it in minutes.
    """

    n_pairs: int = 8
    n_queries: int = 4
    n_keys: int = 64
    n_values: int = 64
    pair_tokens: bool = False

    def __post_init__(self):
        for name in ("n_pairs", "n_queries", "n_keys", "n_values"):
            check_int(name, getattr(self, name))
        if self.n_pairs > self.n_keys:
            raise ValueError(f"n_pairs={self.n_pairs} needs at least as many distinct keys, got n_keys={self.n_keys}")
        if self.n_queries > self.n_pairs:
            raise ValueError(f"n_queries must be <= n_pairs={self.n_pairs}, got {self.n_queries}")
        if not isinstance(self.pair_tokens, bool):
            raise TypeError(f"pair_tokens must be True or False, got {self.pair_tokens!r}")

    @property
    def vocab_size(self) -> int:
        if self.pair_tokens:  # pair tokens, then query-key tokens, then answer tokens
            return self.n_keys * self.n_values + self.n_keys + self.n_values
        return self.n_keys + self.n_values

    @property
    def seq_len(self) -> int:
        """Length of the model's input sequences."""
        return self.n_pairs + self.n_queries if self.pair_tokens else 2 * self.n_pairs + 2 * self.n_queries - 1

    def batch(self, batch: int, generator: torch.Generator):
        """(inputs, targets), each (batch, seq_len). Targets are IGNORE except where a query's answer is due."""
        batch = check_int("batch", batch)
        keys = torch.argsort(torch.rand(batch, self.n_keys, generator=generator), dim=1)[:, :self.n_pairs]
        values = torch.randint(0, self.n_values, (batch, self.n_pairs), generator=generator)
        asked = torch.argsort(torch.rand(batch, self.n_pairs, generator=generator), dim=1)[:, :self.n_queries]
        q_keys, q_values = keys.gather(1, asked), values.gather(1, asked)
        if self.pair_tokens:
            inputs = torch.cat([keys * self.n_values + values, self.n_keys * self.n_values + q_keys], 1)
            targets = torch.full_like(inputs, IGNORE)
            targets[:, self.n_pairs:] = self.n_keys * self.n_values + self.n_keys + q_values
            return inputs, targets
        values = values + self.n_keys
        q_values = q_values + self.n_keys
        seq = torch.cat([torch.stack([keys, values], 2).flatten(1), torch.stack([q_keys, q_values], 2).flatten(1)], 1)
        targets = torch.full_like(seq, IGNORE)
        answer_at = 2 * self.n_pairs + 2 * torch.arange(self.n_queries)  # each query key's position
        targets[:, answer_at] = q_values
        return seq[:, :-1], targets[:, :-1]
