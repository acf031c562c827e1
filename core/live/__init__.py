"""Live explaining of a camera's frames: the newest-frame slot and one worker per viewer (no Streamlit here; the
Live page, ``app_pages/live.py`` with ``ui/live.py``, connects them to the browser's camera)."""
from .slot import NewestSlot
from .worker import (IDLE_S, LiveFrame, LiveSettings, LiveStats, LiveWorker, banner, live_methods, running_workers,
                     why_not_live)

__all__ = ["IDLE_S", "LiveFrame", "LiveSettings", "LiveStats", "LiveWorker", "NewestSlot", "banner",
           "live_methods", "running_workers", "why_not_live"]
