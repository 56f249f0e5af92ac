"""Where a day's raw file comes from: a replay of a shipped CSV, or a landing folder / S3 prefix.

Each use case has its own source; `UseCaseSources` holds one `UseCaseSource` per use case and
dispatches on the spec, so every asset and sensor keeps the one `source` / `landing` resource key
and a second use case never reads the first one's files. `orchestration/resources.py` builds it
from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import dagster as dg

from ml.spec import UseCaseSpec
from resources.storage import storage_from_url

REPLAY, LANDING = "replay", "landing"


@dataclass(frozen=True)
class RawFile:
    name: str
    content: bytes


class MissingFile(FileNotFoundError):
    """The day's file has not landed (yet), or the history has no rows that day: a gap, not a contract breach."""


class DaySource(dg.ConfigurableResource):
    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        raise NotImplementedError


def _iso_day(text: str, date_format: str) -> str:
    """The ISO day an event-date cell belongs to (`1/12/2017` with `%d/%m/%Y` -> `2017-12-01`); a cell
    that does not parse keeps its text, so its line is served on no day and the history shows it."""
    try:
        return datetime.strptime(text.strip(), date_format).date().isoformat()
    except ValueError:
        return text


@lru_cache(maxsize=4)
def _lines_by_day(path: str, event_header: str, date_format: str,
                  encoding: str = "utf-8") -> tuple[bytes, dict[str, list[bytes]]]:
    """The header and the original bytes of each line, grouped by the ISO day of its event date (read once).
    The event column is found by its name in the file (`Column.header`) and read with its format."""
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    columns = [c.strip().lstrip("\ufeff") for c in header.decode(encoding, errors="replace").strip().split(",")]
    if event_header not in columns:
        raise ValueError(f"{path}: no event-date column {event_header!r} in the header {columns}: "
                         f"is this the replay file of another use case?")
    position = columns.index(event_header)
    by_day: dict[str, list[bytes]] = {}
    days: dict[bytes, str] = {}  # each distinct cell parsed once
    for line in body:
        cell = line.split(b",")[position]
        if cell not in days:
            days[cell] = _iso_day(cell.decode(encoding, errors="replace"), date_format)
        by_day.setdefault(days[cell], []).append(line)
    return header, by_day


class ReplaySource(DaySource):
    """Serves a shipped history one day per partition, byte for byte as in the file."""

    csv_path: str = "data/bike_sharing_hourly.csv"

    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        event = spec.event_column
        header, by_day = _lines_by_day(self.csv_path, event.header, event.date_format, spec.encoding)
        if day not in by_day:
            raise MissingFile(f"{self.csv_path} has no rows dated {day}")
        return RawFile(spec.file_name(day), header + b"".join(by_day[day]))


class LandingSource(DaySource):
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


class UseCaseSource(dg.Config):
    """One use case's source: `kind` is `replay` (the history in `replay_csv`) or `landing`."""

    kind: str = REPLAY
    replay_csv: str
    landing_url: str


class UseCaseSources(DaySource):
    """The `source` and `landing` resources of a code location with several use cases."""

    use_cases: dict[str, UseCaseSource]
    endpoint_url: str | None = None

    def _config(self, name: str) -> UseCaseSource:
        if name not in self.use_cases:
            raise KeyError(f"no source configured for use case {name!r} (configured: {sorted(self.use_cases)}); "
                           f"build the resources with its spec")
        return self.use_cases[name]

    def _landing(self, name: str) -> LandingSource:
        return LandingSource(url=self._config(name).landing_url, endpoint_url=self.endpoint_url)

    def source(self, spec: UseCaseSpec) -> DaySource:
        config = self._config(spec.name)
        if config.kind == REPLAY:
            return ReplaySource(csv_path=config.replay_csv)
        if config.kind == LANDING:
            return self._landing(spec.name)
        raise ValueError(f"use case {spec.name!r}: source kind {config.kind!r} is neither {REPLAY!r} nor {LANDING!r}")

    def fetch(self, spec: UseCaseSpec, day: str) -> RawFile:
        return self.source(spec).fetch(spec, day)

    def landed(self, spec: UseCaseSpec) -> list[str]:
        return self._landing(spec.name).landed(spec)

    def version(self, name: str) -> str:
        """`landed` lists `<use case name>_*` files, so a landed name starts with its use case's name
        (the longest one that matches, should one name prefix another)."""
        owner = max((n for n in self.use_cases if name.startswith(f"{n}_")), key=len, default=None)
        if owner is None:
            raise KeyError(f"landed file {name!r} belongs to none of the use cases {sorted(self.use_cases)}")
        return self._landing(owner).version(name)
