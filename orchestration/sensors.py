"""Sensors: landed files become partition runs."""

import dagster as dg

from assets.common import daily_partitions, table_key
from assets.training import model_name
from ml.spec import UseCaseSpec
from resources.mlflow_tracking import CHAMPION, MlflowResource
from resources.sources import LandingSource
from resources.storage import Storage


def day_of(spec: UseCaseSpec, file_name: str) -> str | None:
    """The partition a landed file belongs to, from the spec's file pattern."""
    before, _, after = spec.file_pattern.format(name=spec.name, day="\0").partition("\0")
    if file_name.startswith(before) and file_name.endswith(after):
        return file_name[len(before): len(file_name) - len(after)]
    return None


def build_landing_sensor(spec: UseCaseSpec, daily: dg.JobDefinition, ingest: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(name=f"{spec.name}_landing_sensor", jobs=[daily, ingest], minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED)
    def landing(context: dg.SensorEvaluationContext, landing: LandingSource, storage: Storage,
                mlflow: MlflowResource):
        """One run per landed file; a re-landed (changed) file gets a new run key and is re-ingested.

        A day not scored yet gets its whole daily job, so a file landing after the 06:00 schedule is
        still scored and monitored. A day already scored (its labels landing late, a corrected file)
        is only re-ingested: rescoring it would replace what the model of that day predicted; the
        labels sensor then writes its performance report. Before the first champion exists there is
        nothing to score with, so days are ingested only.
        """
        valid = set(daily_partitions(spec).get_partition_keys())
        champion = None
        for name in landing.landed(spec):
            day = day_of(spec, name)
            if day not in valid:
                continue
            if champion is None:
                champion = mlflow.version_by_alias(model_name(spec), CHAMPION) or False
            scored = storage.exists(table_key(spec, "predictions", day))
            job = daily if champion and not scored else ingest
            yield dg.RunRequest(run_key=f"{name}:{landing.version(name)}", partition_key=day, job_name=job.name)

    return landing

