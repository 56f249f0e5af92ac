"""Where a day's raw file comes from: a replay of the shipped CSV, or a landing folder / S3 prefix."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import dagster as dg

from ml.spec import UseCaseSpec
from resources.storage import storage_from_url


@dataclass(frozen=True)
class RawFile:
    name: str
    content: bytes


class MissingFile(FileNotFoundError):
    """The day's file has not landed (yet): a late file, not a contract breach."""


class RentalSource(dg.ConfigurableResource):
    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        raise NotImplementedError


@lru_cache(maxsize=4)
def _lines_by_day(path: str, event_date: str) -> tuple[bytes, dict[str, list[bytes]]]:
    """The header and the original bytes of each line, grouped by event date (read once)."""
    lines = open(path, "rb").read().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    position = header.decode().strip().split(",").index(event_date)
    by_day: dict[str, list[bytes]] = {}
    for line in body:
        by_day.setdefault(line.split(b",")[position].decode(), []).append(line)
    return header, by_day


class ReplaySource(RentalSource):
    """Serves the shipped history one day per partition, byte for byte as in the file."""

    csv_path: str = "data/bike_sharing_hourly.csv"

    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        header, by_day = _lines_by_day(self.csv_path, spec.event_date)
        if day not in by_day:
            raise MissingFile(f"{self.csv_path} has no rows dated {day}")
        return RawFile(spec.file_name(day), header + b"".join(by_day[day]))


class LandingSource(RentalSource):
    """Files dropped as `<url>/<spec file name>`, in a local folder or under `s3://bucket/prefix`."""

    url: str = "var/landing"
    endpoint_url: str | None = None

    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        store = storage_from_url(self.url, self.endpoint_url)
        name = spec.file_name(day)
        if not store.exists(name):
            raise MissingFile(f"{store.uri(name)} has not landed")
        return RawFile(name, store.read_bytes(name))

    def landed(self, spec: UseCaseSpec) -> list[str]:
        """File names present now; the sensor maps them to partitions."""
        return storage_from_url(self.url, self.endpoint_url).list_keys(f"{spec.name}_")

    def version(self, name: str) -> str:
        """Changes when the file is replaced (mtime/size, or the S3 ETag), so a corrected file is
        re-ingested; the sensor never reads file contents on its tick."""
        return storage_from_url(self.url, self.endpoint_url).version(name)
