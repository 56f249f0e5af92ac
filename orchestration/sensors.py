"""Sensors: landed files become partition runs."""

import dagster as dg

from assets.common import daily_partitions
from ml.spec import UseCaseSpec
from resources.sources import LandingSource


def day_of(spec: UseCaseSpec, file_name: str) -> str | None:
    """The partition a landed file belongs to, from the spec's file pattern."""
    before, _, after = spec.file_pattern.format(name=spec.name, day="\0").partition("\0")
    if file_name.startswith(before) and file_name.endswith(after):
        return file_name[len(before): len(file_name) - len(after)]
    return None


def build_landing_sensor(spec: UseCaseSpec, job) -> dg.SensorDefinition:
    @dg.sensor(name=f"{spec.name}_landing_sensor", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED)
    def landing(context: dg.SensorEvaluationContext, landing: LandingSource):
        """One run per landed file; a re-landed (changed) file gets a new run key and is re-ingested."""
        valid = set(daily_partitions(spec).get_partition_keys())
        for name in landing.landed(spec):
            day = day_of(spec, name)
            if day in valid:
                yield dg.RunRequest(run_key=f"{name}:{landing.version(name)}", partition_key=day)

    return landing
