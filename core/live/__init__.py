"""Live explaining of a camera's frames: the newest-frame slot, one worker per viewer, and the gate at which the
workers give way to the pages (no Streamlit here; the Live page, ``app_pages/live.py`` with ``ui/live.py``,
connects them to the browser's camera).

The worker's names load on first use, so the app's script can enter the pages' gate (:mod:`.gate`) without loading
NumPy and the methods before a page's first paint."""
from importlib import import_module

from .gate import PAGES, PageGate
from .slot import NewestSlot

_WORKER = ("IDLE_S", "LiveFrame", "LiveSettings", "LiveStats", "LiveWorker", "banner", "live_methods",
           "running_workers", "why_not_live")

__all__ = ["PAGES", "NewestSlot", "PageGate", *_WORKER]


def __getattr__(name: str):
    if name in _WORKER:
        return getattr(import_module(".worker", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
