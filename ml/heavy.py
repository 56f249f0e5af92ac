"""Heavy libraries (GX, MLflow, LightGBM, matplotlib) imported where they are used, with the cyclic
garbage collector paused.

Importing them builds hundreds of thousands of long-lived objects, and every generational collection
triggered along the way walks all of them again: about 2.5 s of one day's 12 s from the CLI
(`benchmarks/startup.py`). With the collector paused during the import and the result frozen (moved
to the permanent generation) afterwards, they are never walked again. A module already imported costs
one dictionary lookup.
"""

from __future__ import annotations

import gc
import importlib
import sys
from types import ModuleType


def heavy_import(name: str) -> ModuleType:
    module = sys.modules.get(name)
    if module is not None:
        return module
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
