"""The dedupe window: which events were already delivered, by (cluster, auditID, stage)."""

from __future__ import annotations

from array import array
from collections.abc import Hashable

DEFAULT_DEDUPE_WINDOW = 65_536


class Deduper:
    """The last `capacity` event keys seen: the one dedupe of every path (the function, each
    plugin source), `dedupe_window` keys wide; 0 turns it off.

    Bounded because it lives as long as the process (Function host, Falco plugin) and must
    catch the ``kube-audit`` / ``kube-audit-admin`` copies and queue redeliveries without
    growing with traffic; compact and allocated whole because it is large: a key is kept as
    its 64-bit hash (the str hashes Python keys per process, so input cannot aim a
    collision) in an open-addressing table of twice the capacity and in a ring of arrival
    order, 24-31 bytes a key whatever its length, all of it taken up front. The oldest key
    leaves first.
    """

    __slots__ = ("_capacity", "_count", "_mask", "_next", "_ring", "_table")

    def __init__(self, capacity: int = DEFAULT_DEDUPE_WINDOW) -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 (off) or more")
        self._capacity = capacity
        size = 1 << max(1, (2 * capacity - 1).bit_length()) if capacity else 2
        self._table = array("q", bytes(8 * size))  # 0: an empty slot
        self._mask = size - 1
        self._ring = array("q", bytes(8 * capacity))  # the hashes in arrival order
        self._next = 0  # the ring slot the next key takes
        self._count = 0

    @staticmethod
    def _hash(key: Hashable) -> int:
        return hash(key) or 1  # 0 marks an empty slot

    def _slot(self, digest: int) -> int:
        """The slot holding `digest`, else the empty slot where it would go."""
        table, mask = self._table, self._mask
        i = digest & mask
        while table[i] and table[i] != digest:
            i = (i + 1) & mask
        return i

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` is in the window (without recording it)."""
        return bool(self._table[self._slot(self._hash(key))])

    def seen(self, key: Hashable) -> bool:
        """Record ``key``; return True when it was already in the window."""
        if not self._capacity:
            return False
        digest = self._hash(key)
        slot = self._slot(digest)
        if self._table[slot]:
            return True
        if self._count == self._capacity:
            self._remove(self._ring[self._next])
            slot = self._slot(digest)  # the removal may have moved its place
        else:
            self._count += 1
        self._table[slot] = digest
        self._ring[self._next] = digest
        self._next = (self._next + 1) % self._capacity
        return False

    def discard(self, key: Hashable) -> None:
        """Take `key` out of the window: its event was not delivered after all. Its ring
        slot is emptied too, so the key may come back and stay its full turn; until that
        slot's turn comes round, the window holds one key fewer."""
        digest = self._hash(key)
        if self._table[self._slot(digest)]:
            self._remove(digest)
            self._ring[self._ring.index(digest)] = 0

    def _remove(self, digest: int) -> None:
        """Empty `digest`'s slot and move later keys of its run back (linear probing keeps
        no tombstones, so lookups stay short). 0: a ring slot a discard emptied."""
        if not digest:
            return
        table, mask = self._table, self._mask
        i = self._slot(digest)
        j = i
        while True:
            j = (j + 1) & mask
            if not table[j]:
                break
            home = table[j] & mask  # where that key would sit in an empty table
            if (i <= j and (home <= i or home > j)) or (i > j and j < home <= i):
                table[i] = table[j]
                i = j
        table[i] = 0

    def __len__(self) -> int:
        return self._count
