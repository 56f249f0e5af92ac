"""`python -m serving` (`make serve`): the model server on the lake and registry Dagster uses.

The lake and MLflow come from the same environment variables as the code location (`LAKE_ROOT` or
`LAKE_S3_BUCKET`, `MLFLOW_TRACKING_URI`, ...: `orchestration.resources.build_resources`); the server's own
knobs from `SERVING_*` variables or the flags below (docs/online-serving.md).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

import dagster as dg
import uvicorn

from ml.usecases import USE_CASES
from orchestration.resources import build_resources
from serving.app import Settings, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--use-case", action="append", choices=sorted(USE_CASES),
                        help="serve only these use cases (repeatable; default: every registered one)")
    parser.add_argument("--poll-seconds", type=float, dest="poll_s")
    parser.add_argument("--canary-share", type=float)
    parser.add_argument("--shadow", action="store_true", default=None)
    parser.add_argument("--log-sample", type=float)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    specs = [USE_CASES[name] for name in (args.use_case or USE_CASES)]
    settings = Settings.from_env(poll_s=args.poll_s, canary_share=args.canary_share, shadow=args.shadow,
                                 log_sample=args.log_sample)
    resources = build_resources(specs)
    # Resolved as Dagster resolves them in a run (dg.EnvVar values read now).
    with dg.build_resources({"storage": resources["storage"], "mlflow": resources["mlflow"]}) as built:
        app = create_app(specs, built.storage, built.mlflow, settings)
        # What the imports left (Dagster, MLflow, polars: some 250,000 objects) would be walked again by every
        # full collection, a 150 ms stall of the event loop each time: moved out of the collector's sight.
        gc.collect()
        gc.freeze()
        # The request log's hand-off to its writer and the registry poll are threads: holding the GIL in their
        # Python parts, each would keep the event loop waiting up to the switch interval (5 ms by default) at
        # every hand-back; 0.5 ms bounds what a background thread adds to a request.
        sys.setswitchinterval(0.0005)
        # One process, one event loop (uvloop, httptools when installed): requests share the batcher's
        # passes instead of competing processes on a small machine.
        uvicorn.run(app, host=args.host, port=args.port, loop="auto", http="auto", access_log=False,
                    log_level="warning", timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
