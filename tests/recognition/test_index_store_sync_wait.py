"""A sync that waits for the process holding it (a compaction bringing in its new base) always runs its
own update, even when that process served its request with its own update meanwhile."""

from __future__ import annotations

import threading
import time

from recognition.index_store import SYNC_LOCK_FILE, SYNC_REQUEST_FILE, IndexStore


def test_a_waiting_sync_runs_its_update_after_the_holder_served_its_request(tmp_path):
    store = IndexStore(tmp_path, dim=4)
    holding, served = threading.Event(), threading.Event()

    def holder() -> None:
        # another process's sync round: it holds the lock, then serves every request left meanwhile
        with IndexStore(tmp_path, dim=4)._locked(SYNC_LOCK_FILE, blocking=True):
            holding.set()
            while not (tmp_path / SYNC_REQUEST_FILE).exists():
                time.sleep(0.01)
            (tmp_path / SYNC_REQUEST_FILE).unlink()  # taken by its own next round
            served.set()

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)
    ran_updates: list[str] = []

    ran = store.sync(lambda index: ran_updates.append("compaction"), timed=False, wait=True)

    thread.join(5)
    assert served.is_set()
    assert ran and ran_updates == ["compaction"]
