"""Code location for test_run_monitoring: a run that sleeps long enough to be killed, and a quick one.

The sensor submits both on the daemon's first tick, sleepy first (run keys: never again), so the
runs go through the instance's run queue without a CLI process per run. In-process executor: the
run worker itself executes the op, so killing the worker ends the run's only process.
"""

import time

import dagster as dg


@dg.op
def nap() -> None:
    time.sleep(120)


@dg.op
def wake() -> int:
    return 1


@dg.job(executor_def=dg.in_process_executor)
def sleepy():
    nap()


@dg.job(executor_def=dg.in_process_executor)
def quick():
    wake()


@dg.sensor(jobs=[sleepy, quick], minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def submit_both():
    yield dg.RunRequest(run_key="sleepy", job_name="sleepy")
    yield dg.RunRequest(run_key="quick", job_name="quick")


defs = dg.Definitions(jobs=[sleepy, quick], sensors=[submit_both])
