"""Object storage behind one interface: a local folder (default) or S3 through boto3.

Writes are atomic: a local write goes to a temporary name in the same folder and is renamed; an
S3 write is a single PUT, which S3 makes visible all at once. A killed run leaves no half file:
locally, at most a hidden temporary file, which no listing returns and a later write to the same
folder removes once it is stale (`LocalStorage.remove_stale_temporaries`); on S3 nothing at all
(a PUT that did not complete leaves no object, and no multipart upload is used).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import PrivateAttr

from resources.failpoints import failpoint


class Storage(dg.ConfigurableResource):
    """Keys are '/'-separated paths relative to the store's root."""

    def write_bytes(self, key: str, data: bytes) -> str:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is not an error."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list_keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def version(self, key: str) -> str:
        """Changes whenever the object is rewritten, without reading its content."""
        raise NotImplementedError

    def write_parquet(self, key: str, frame: pl.DataFrame) -> str:
        buf = io.BytesIO()
        frame.write_parquet(buf)
        return self.write_bytes(key, buf.getvalue())

    def read_parquet(self, key: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.read_bytes(key)))

    def write_json(self, key: str, value: dict) -> str:
        return self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))


# A write's temporary file, beside its key: `.<name>.<host>-<pid>.<8 random characters>.tmp`, naming
# the writer (host: a digest of its host name); files from before the writer was named lack `<host>-<pid>.`.
_TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# A temporary file is stale, left by a killed writer, when its writer process on this host is gone, or
# (another host's, whose processes cannot be seen from here) when it is older than this: a live write
# keeps it for seconds (write, fsync, rename), a paused one (a debugger, the crash tests) for minutes.
ALWAYS_STALE_AFTER_S = 3600.0


def is_temporary(name: str) -> bool:
    """Whether a file name is an unfinished write's temporary file, never a key."""
    return _TEMPORARY.match(name) is not None


def temporary_prefix(name: str) -> str:
    """The start of the temporary file name this process gives a write of `name`."""
    return f".{name}.{_HOST}-{os.getpid()}."


def _writer_gone(host: str | None, pid: str | None) -> bool:
    """Whether the process that wrote a temporary file has ended (known only for this host's)."""
    if host != _HOST or pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # exists under another user / not a pid
        return False
    return False


class LocalStorage(Storage):
    root: str = "var/lake"

    def _path(self, key: str) -> Path:
        return Path(self.root) / key

    def remove_stale_temporaries(self, folder: Path, now: float | None = None) -> list[Path]:
        """Delete the temporary files that killed writers left in `folder`: their writer process is gone,
        or they are older than ALWAYS_STALE_AFTER_S. Writes still in progress, in this process or another,
        keep theirs."""
        now = time.time() if now is None else now
        removed = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return removed
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                age = now - entry.stat(follow_symlinks=False).st_mtime
                if _writer_gone(match["host"], match["pid"]) or age >= ALWAYS_STALE_AFTER_S:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except FileNotFoundError:  # another writer cleaned it first
                continue
        return removed

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            failpoint("after_temp_write", key)  # crash tests: written and synced, not yet renamed
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # the write is done; tidying what a killed writer left must never fail it
            self.remove_stale_temporaries(path.parent)
        except OSError:
            pass
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = Path(self.root)
        start = self._path(prefix)
        folder = start if start.is_dir() else start.parent
        if not folder.exists():
            return []
        # os.walk, not Path.rglob: the daily graph lists folders that gain a file a day, and pathlib's
        # per-file objects and stat calls made the listing grow into a few percent of a replay.
        keys = []
        for directory, _, files in os.walk(folder):
            relative = Path(directory).relative_to(base).as_posix()
            head = "" if relative == "." else f"{relative}/"
            # Hidden names, among them unfinished writes' temporary files, are never keys.
            keys += [head + name for name in files if not name.startswith(".")]
        return sorted(k for k in keys if k.startswith(prefix))

    def uri(self, key: str) -> str:
        return str(self._path(key).resolve())

    def version(self, key: str) -> str:
        stat = self._path(key).stat()
        return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


class StorageError(RuntimeError):
    """An object store call that failed after its retries, naming the operation, bucket and key."""


class S3Storage(Storage):
    """Objects under `s3://bucket/prefix/`. Transient failures (connection refused or reset, timeouts,
    throttling, 5xx) are retried by botocore with exponential backoff (`max_attempts` calls in all);
    what still fails is a `StorageError` naming the operation and the object."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    max_attempts: int = 6
    timeout_s: float = 10.0
    _client: object = PrivateAttr(default=None)

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"},
                            connect_timeout=self.timeout_s, read_timeout=self.timeout_s)
            self._client = boto3.client("s3", endpoint_url=self.endpoint_url or None, region_name=self.region_name,
                                        config=config)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    @contextmanager
    def _calling(self, operation: str, key: str):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"S3 {operation} of {self.uri(key)} (bucket {self.bucket!r}, key {self._key(key)!r}, "
                               f"endpoint {self.endpoint_url or 'AWS'}) failed after up to {self.max_attempts} "
                               f"attempts: {e}") from e

    def write_bytes(self, key: str, data: bytes) -> str:
        with self._calling("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        with self._calling("get", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def delete(self, key: str) -> None:
        with self._calling("delete", key):  # S3 answers 204 for a key that is not there
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._calling("head", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
                return True
            except ClientError as e:
                if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def list_keys(self, prefix: str) -> list[str]:
        strip = len(self._key(""))
        with self._calling("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            return sorted(o["Key"][strip:] for page in pages for o in page.get("Contents", []))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def version(self, key: str) -> str:
        with self._calling("head", key):
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"].strip('"')


def storage_from_url(url: str, endpoint_url: str | None = None) -> Storage:
    """`s3://bucket/prefix` gives S3Storage; anything else is a local folder."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        return S3Storage(bucket=bucket, prefix=prefix, endpoint_url=endpoint_url)
    return LocalStorage(root=url)
