import gc
import sys

from ml.heavy import heavy_import


def test_heavy_import_freezes_what_it_built_and_restores_the_collector():
    sys.modules.pop("wave", None)
    gc.unfreeze()
    module = heavy_import("wave")
    assert module is sys.modules["wave"] and hasattr(module, "open")
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # the import's objects are out of the collected generations
    gc.unfreeze()


def test_heavy_import_keeps_a_disabled_collector_disabled_and_reuses_a_loaded_module():
    gc.disable()
    try:
        assert heavy_import("json") is sys.modules["json"]
        sys.modules.pop("wave", None)
        heavy_import("wave")
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
