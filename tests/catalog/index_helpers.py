"""What the index tests of the catalog share."""

from __future__ import annotations

from recognition.services import index_store_get


def indexed_ids() -> set[int]:
    """The photo ids the published index holds."""
    return set(index_store_get().load().ids().tolist())
