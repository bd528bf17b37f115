"""Worker-local memos of pure answers (a series repeats its values), bounded by clearing whole."""
from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, entries: int) -> V:
    """Store value under key and return it; a memo holding `entries` answers is emptied first,
    so it never grows past that (worker memory only, never written; a hit equals a fresh answer)."""
    if len(memo) >= entries:
        memo.clear()
    memo[key] = value
    return value
