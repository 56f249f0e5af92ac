"""What a killed writer leaves in the local lake (a temporary file, never a half key) is never listed
and is removed by the next write to its folder; checkpoints are pruned by prefix."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import resources.storage as storage_module
from resources.checkpoints import StorageCheckpoints
from resources.storage import LocalStorage, is_temporary, temporary_prefix

ROOT = Path(__file__).resolve().parents[2]
KEY = "rentals/validated/2011-06-01.parquet"


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


def plant(folder: Path, name: str, writer: str | None, age_s: float = 0.0, content: bytes = b"half a file") -> Path:
    """A temporary file as `LocalStorage.write_bytes` names it (`writer`: "<host>-<pid>", None for the
    unnamed files of older versions), last written `age_s` ago."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (f".{name}.{writer}.k3x9_q2z.tmp" if writer else f".{name}.k3x9_q2z.tmp")
    tmp.write_bytes(content)
    when = time.time() - age_s
    os.utime(tmp, (when, when))
    return tmp


def here(pid: int) -> str:
    return f"{storage_module._HOST}-{pid}"


@pytest.fixture
def lake(tmp_path):
    return LocalStorage(root=str(tmp_path / "lake"))


def test_temporary_names_are_recognised():
    assert temporary_prefix("a.parquet") == f".a.parquet.{storage_module._HOST}-{os.getpid()}."
    assert is_temporary(f"{temporary_prefix('2011-06-01.parquet')}k3x9_q2z.tmp")
    assert is_temporary(".2011-06-01.parquet.k3x9_q2z.tmp")  # written before writers were named
    assert not is_temporary("2011-06-01.parquet") and not is_temporary(".2011-06-01.parquet")
    assert not is_temporary("notes.tmp")


def test_a_killed_writers_temporary_is_never_listed_and_the_next_write_removes_it(lake, tmp_path):
    folder = tmp_path / "lake" / "rentals" / "validated"
    stale = plant(folder, "2011-06-01.parquet", here(dead_pid()))  # its writer was killed: gone at once
    other = plant(folder, "2011-05-31.parquet", "0123abcd-42", age_s=2 * storage_module.ALWAYS_STALE_AFTER_S)
    old = plant(folder, "2011-05-30.parquet", None, age_s=2 * storage_module.ALWAYS_STALE_AFTER_S)
    assert lake.list_keys("rentals/") == [] and lake.list_keys("rentals/validated/") == []
    assert not lake.exists(KEY)

    lake.write_bytes(KEY, b"the whole file")

    assert not stale.exists() and not other.exists() and not old.exists()
    assert lake.list_keys("rentals/validated/") == [KEY]
    assert lake.read_bytes(KEY) == b"the whole file"
    assert sorted(p.name for p in folder.iterdir()) == ["2011-06-01.parquet"]


def test_a_write_in_progress_elsewhere_keeps_its_temporary(lake, tmp_path):
    folder = tmp_path / "lake" / "rentals" / "validated"
    live = plant(folder, "2011-06-01.parquet", here(os.getppid()))  # a live process writing this key now
    paused = plant(folder, "2011-06-02.parquet", here(os.getppid()), age_s=600)  # e.g. paused by a test
    mine = plant(folder, "2011-06-03.parquet", here(os.getpid()), age_s=600)  # another thread of this process
    remote = plant(folder, "2011-06-04.parquet", "0123abcd-42", age_s=600)  # another host's, not an hour old
    lake.write_bytes(KEY, b"mine")
    assert live.exists() and paused.exists() and mine.exists() and remote.exists()
    assert lake.list_keys("rentals/") == [KEY]


def test_what_a_writer_killed_between_write_and_rename_leaves_is_cleaned(lake, tmp_path):
    """A real kill (SIGKILL at the `after_temp_write` failpoint): the key keeps its old bytes, the
    temporary file is left, no listing shows it, and the next write removes it."""
    lake.write_bytes(KEY, b"old")
    code = ("from resources.storage import LocalStorage; "
            f"LocalStorage(root={str(tmp_path / 'lake')!r}).write_bytes({KEY!r}, b'new, never renamed')")
    env = {**os.environ, "ML_FAILPOINT": "after_temp_write:validated", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    folder = tmp_path / "lake" / "rentals" / "validated"
    [left] = [p for p in folder.iterdir() if is_temporary(p.name)]
    assert left.read_bytes() == b"new, never renamed" and lake.read_bytes(KEY) == b"old"
    assert lake.list_keys("rentals/") == [KEY]

    lake.write_bytes(KEY, b"again")
    assert not left.exists() and lake.read_bytes(KEY) == b"again"
    assert sorted(p.name for p in folder.iterdir()) == ["2011-06-01.parquet"]


def test_delete_removes_a_key_and_ignores_a_missing_one(lake):
    lake.write_bytes("a/b.json", b"{}")
    lake.delete("a/b.json")
    lake.delete("a/b.json")
    assert not lake.exists("a/b.json") and lake.list_keys("a/") == []


def test_checkpoints_are_pruned_under_their_prefix_only(lake):
    mine = StorageCheckpoints(lake, "rentals/checkpoints/abc-123")
    other = StorageCheckpoints(lake, "rentals/checkpoints/abc-1234")  # a prefix of it by name only
    for epoch in range(3):
        mine.save(epoch, f"state {epoch}".encode())
    other.save(0, b"other state")
    assert mine.latest() == (2, b"state 2")

    assert mine.prune() == 3
    assert mine.latest() is None and mine.prune() == 0
    assert other.latest() == (0, b"other state")
    assert lake.list_keys("rentals/checkpoints/") == ["rentals/checkpoints/abc-1234/epoch-00000.pt"]
