"""Failpoints: kill (or pause) this process at a named point, for the crash tests.

`ML_FAILPOINT=<name>[:<text>]` arms one failpoint: the first `failpoint(name, detail)` call whose
detail contains `text` SIGKILLs the process there, as a power cut or an OOM kill would (no exception,
no `finally`, no atexit). The points, one line each in the code they interrupt:

| name | where | detail |
| --- | --- | --- |
| `after_temp_write` | `LocalStorage.write_bytes`: the temporary file is written and synced, not yet renamed | the key |
| `before_register` | `MlflowResource.log_onnx_model`: the run has its metrics and artifacts, no version yet | the model name |
| `before_alias_move` | `MlflowResource.set_alias`: the evidence tags are on the version, the alias not moved | the alias |

With `ML_FAILPOINT_PAUSE=<folder>` the armed point pauses instead of killing: it creates
`<folder>/reached` and waits until `<folder>/release` exists (a test acts on the world meanwhile,
e.g. restarts the database the run writes to). Unset, `failpoint` is a comparison with None.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_ARMED = os.environ.get("ML_FAILPOINT") or None


def failpoint(name: str, detail: str = "") -> None:
    if _ARMED is None:
        return
    _hit(name, detail)


def _hit(name: str, detail: str) -> None:
    global _ARMED
    want, _, text = _ARMED.partition(":")
    if want != name or text not in detail:
        return
    pause = os.environ.get("ML_FAILPOINT_PAUSE")
    if not pause:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # SIGKILL is delivered asynchronously; never run past the point
    _ARMED = None  # a pause happens once
    folder = Path(pause)
    (folder / "reached").write_text(f"{name}:{detail}\n")
    while not (folder / "release").exists():
        time.sleep(0.05)
