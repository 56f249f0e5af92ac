"""`make demo`: the lifecycle on the embedded default (SQLite instance, local lake, local MLflow).

Runs the main job over the demo window as one backfill run per stage, into the persistent
DAGSTER_HOME, so `make ui` afterwards shows every asset, check and run it produced.
"""

import os
import sys

import dagster as dg

from orchestration.definitions import defs

FIRST_DAY = os.getenv("DEMO_FIRST_DAY", "2011-01-01")
LAST_DAY = os.getenv("DEMO_LAST_DAY", "2011-04-30")


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        job = defs.resolve_job_def("ingest_rentals")
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": FIRST_DAY, "dagster/asset_partition_range_end": LAST_DAY},
            raise_on_error=False,
        )
        for check in result.get_asset_check_evaluations():
            print(f"check {check.asset_key.to_user_string()}:{check.check_name}: "
                  f"{'passed' if check.passed else 'FAILED'} — {check.description}")
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}; open the UI with `make ui`")
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
