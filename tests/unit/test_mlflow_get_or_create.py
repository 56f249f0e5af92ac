"""Getting-or-creating the experiment and the registered model when another process creates it first.

Two retrains on a new registry both read "no experiment 'rentals'" and both create it: the loser's create
fails with RESOURCE_ALREADY_EXISTS (a unique-constraint violation in the store). Here two threads on one
SQLite store are made to read "absent" before either creates (a barrier in the read), so one create
really loses; both must get the same experiment (model) and neither may fail.
"""

import threading

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from resources.mlflow_tracking import (already_exists, get_or_create, get_or_create_experiment,
                                       get_or_create_registered_model)


class FirstReadsTogether:
    """A client whose first read of each thread waits until every thread has read: all see "absent"."""

    def __init__(self, client: MlflowClient, parties: int):
        self._client, self._barrier, self._local = client, threading.Barrier(parties, timeout=30), threading.local()

    def _first_read(self, read, *args):
        try:
            return read(*args)  # get_registered_model raises RESOURCE_DOES_NOT_EXIST when absent
        finally:
            if not getattr(self._local, "read", False):
                self._local.read = True
                self._barrier.wait()

    def get_experiment_by_name(self, name):
        return self._first_read(self._client.get_experiment_by_name, name)

    def get_registered_model(self, name):
        return self._first_read(self._client.get_registered_model, name)

    def __getattr__(self, attr):  # creates go straight to the store
        return getattr(self._client, attr)


@pytest.fixture()
def client(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    client.search_registered_models()  # the schema exists, as behind a server (see MlflowResource.client)
    return client


def both_at_once(target):
    results, errors = [], []

    def run():
        try:
            results.append(target())
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_two_processes_creating_the_experiment_at_once_get_the_same_one(client, tmp_path):
    racing = FirstReadsTogether(client, 2)
    results, errors = both_at_once(lambda: get_or_create_experiment(racing, "rentals", (tmp_path / "a").as_uri()))
    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert [e.experiment_id for e in client.search_experiments(filter_string="name = 'rentals'")] == [results[0]]


def test_two_processes_creating_the_registered_model_at_once_get_the_same_one(client):
    racing = FirstReadsTogether(client, 2)
    results, errors = both_at_once(lambda: get_or_create_registered_model(racing, "rentals_demand"))
    assert errors == []
    assert [m.name for m in results] == ["rentals_demand", "rentals_demand"]
    assert [m.name for m in client.search_registered_models()] == ["rentals_demand"]


def test_the_losing_create_really_fails_with_already_exists(client):
    """What the fix tolerates, so that the tests above test something: a plain second create fails."""
    client.create_experiment("rentals")
    with pytest.raises(MlflowException) as experiment:
        client.create_experiment("rentals")
    client.create_registered_model("rentals_demand")
    with pytest.raises(MlflowException) as model:
        client.create_registered_model("rentals_demand")
    assert already_exists(experiment.value) and already_exists(model.value)
    assert experiment.value.error_code == model.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_a_raw_integrity_error_counts_as_already_exists():
    import sqlalchemy.exc

    integrity = sqlalchemy.exc.IntegrityError("INSERT INTO experiments ...", {}, Exception("duplicate key"))
    wrapped = MlflowException("commit failed", error_code="BAD_REQUEST")
    wrapped.__cause__ = integrity
    assert already_exists(integrity) and already_exists(wrapped)
    assert not already_exists(MlflowException("bad name", error_code="INVALID_PARAMETER_VALUE"))


def test_other_create_failures_are_not_swallowed():
    def create():
        raise MlflowException("bad name", error_code="INVALID_PARAMETER_VALUE")

    with pytest.raises(MlflowException, match="bad name"):
        get_or_create(lambda: None, create)


def test_already_exists_but_still_not_found_is_not_success():
    def create():
        raise MlflowException("exists", error_code="RESOURCE_ALREADY_EXISTS")

    with pytest.raises(MlflowException, match="exists"):
        get_or_create(lambda: None, create)
