"""Ingestion through Dagster: replay, conservation on every partition, blocking schema contract."""

from pathlib import Path

import dagster as dg
import pytest

from assets.common import raw_pointer_key, table_key
from resources.sources import LandingSource
from resources.storage import LocalStorage
from tests.dagster.helpers import materialize_days

# raw, the split and their contract checks.
INGEST = dg.AssetSelection.assets("raw_rentals", "validated_rentals", "quarantined_rentals")


def counts(spec, storage, day):
    raw = storage.read_json(raw_pointer_key(spec, day))["rows"]
    good = storage.read_parquet(table_key(spec, "validated", day)).height
    bad = storage.read_parquet(table_key(spec, "quarantined", day)).height
    return raw, good, bad


@pytest.mark.slow
def test_replaying_all_731_days_accounts_for_every_real_row(spec, replay, tmp_path):
    storage = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": storage, "source": replay}, "2011-01-01", "2012-12-31",
                              selection=INGEST)
    assert result.success
    days = [d.isoformat() for d in __import__("pandas").date_range("2011-01-01", "2012-12-31").date]
    assert len(days) == 731
    totals = [counts(spec, storage, d) for d in days]
    assert all(raw == good + bad for raw, good, bad in totals)
    assert sum(raw for raw, _, _ in totals) == 17_379
    assert sum(good for _, good, _ in totals) == 17_379  # the real history is clean
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"schema_contract": True, "volume": False, "row_contract": True, "conservation": True}


def test_a_schema_break_stops_the_graph_with_file_column_and_rule(spec, june_first, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    bad = june_first.replace(b",cnt", b",count")
    (landing / "rentals_2011-06-01.csv").write_bytes(bad)
    storage = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(landing))},
                              "2011-06-01", selection=INGEST)
    schema = next(e for e in result.get_asset_check_evaluations() if e.check_name == "schema_contract")
    assert not schema.passed
    assert "rentals_2011-06-01.csv" in schema.description and "'cnt'" in schema.description
    assert "schema.required_column" in schema.description
    # The blocking check kept validated/quarantined from being built from a broken file.
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert materialized == {"raw_rentals"}
    assert storage.read_bytes(storage.read_json(raw_pointer_key(spec, "2011-06-01"))["key"]) == bad


def test_bad_rows_reach_quarantine_and_checks_still_pass(spec, june_first, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = june_first.splitlines(keepends=True)
    (landing / "rentals_2011-06-01.csv").write_bytes(b"".join(lines) + lines[3] + lines[5].replace(b",0.", b",-0.", 1))
    storage = LocalStorage(root=str(tmp_path / "lake"))
    result = materialize_days(spec, {"storage": storage, "source": LandingSource(url=str(landing))},
                              "2011-06-01", selection=INGEST)
    assert result.success
    assert counts(spec, storage, "2011-06-01") == (26, 24, 2)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["conservation"] and checks["row_contract"]


def test_re_ingesting_a_corrected_file_keeps_the_original_bytes(spec, june_first, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    storage = LocalStorage(root=str(tmp_path / "lake"))
    resources = {"storage": storage, "source": LandingSource(url=str(landing))}
    (landing / "rentals_2011-06-01.csv").write_bytes(june_first + june_first.splitlines(keepends=True)[1])
    assert materialize_days(spec, resources, "2011-06-01", selection="raw_rentals").success
    first = storage.read_json(raw_pointer_key(spec, "2011-06-01"))
    (landing / "rentals_2011-06-01.csv").write_bytes(june_first)
    assert materialize_days(spec, resources, "2011-06-01", selection="raw_rentals").success
    second = storage.read_json(raw_pointer_key(spec, "2011-06-01"))
    assert first["key"] != second["key"] and storage.exists(first["key"]) and storage.exists(second["key"])


def test_each_validated_day_has_its_data_docs_page_in_the_lake_linked_from_the_check(spec, replay, tmp_path):
    from urllib.parse import urlparse

    storage = LocalStorage(root=str(tmp_path / "lake"))
    pages = {}
    for day in ("2011-06-01", "2011-06-02"):
        result = materialize_days(spec, {"storage": storage, "source": replay}, day, selection=INGEST)
        check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "row_contract")
        pages[day] = Path(urlparse(check.metadata["data_docs"].value).path)
    assert pages["2011-06-01"] == tmp_path / "lake" / "rentals" / "data_docs" / "2011-06-01" / "index.html"
    page = pages["2011-06-02"].read_text()
    assert "rentals_validated" in page and "Succeeded" in page and "values must never be null" in page
    index = (tmp_path / "lake" / "rentals" / "data_docs" / "index.html").read_text()
    assert index.index('href="2011-06-02/index.html"') < index.index('href="2011-06-01/index.html"')


def test_a_failed_validation_renders_the_broken_expectation(spec, june_first):
    import re

    from checks.data_docs import render_page
    from checks.gx_contract import validate
    from ml.contract import split_rows

    frame = split_rows(spec, june_first, "2011-06-01").validated
    outcome = validate(spec, frame.with_columns(hum=-frame["hum"]))
    text = " ".join(re.sub(r"<[^>]+>", " ", render_page(outcome.result)).split())
    assert not outcome.success and "Status: Failed" in text and "Unsuccessful Expectations 1" in text
    assert "24 unexpected values found" in text and "-0.79" in text  # hum: the day's first negated value
