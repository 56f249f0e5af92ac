"""Training checkpoints kept in the lake, so a retried run resumes instead of starting over."""

from __future__ import annotations

from resources.storage import Storage


class StorageCheckpoints:
    """`save(epoch, payload)` / `latest()` under one prefix; the prefix names the training inputs,
    so only a run on the same data, family and parameters can resume from it."""

    def __init__(self, storage: Storage, prefix: str):
        self.storage, self.prefix = storage, prefix.rstrip("/")

    def save(self, epoch: int, payload: bytes) -> None:
        self.storage.write_bytes(f"{self.prefix}/epoch-{epoch:05d}.pt", payload)

    def latest(self) -> tuple[int, bytes] | None:
        keys = [k for k in self.storage.list_keys(f"{self.prefix}/") if k.endswith(".pt")]
        if not keys:
            return None
        key = max(keys)
        return int(key.rsplit("epoch-", 1)[1].split(".")[0]), self.storage.read_bytes(key)

    def prune(self) -> int:
        """Delete every checkpoint under the prefix, once the model they lead to is registered: a
        later run on the same inputs trains from scratch, it never resumes a finished training.
        Returns how many were deleted."""
        keys = self.storage.list_keys(f"{self.prefix}/")
        for key in keys:
            self.storage.delete(key)
        return len(keys)
