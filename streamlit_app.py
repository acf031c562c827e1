"""Grad-CAM Studio's pages: navigation and page config; each page draws the shared sidebar.

Not the file ``streamlit run`` takes: that is ``app.py`` (the server, with the :mod:`server` package's
adjustments), which runs this script for every page view; ``streamlit run streamlit_app.py`` also works, without them.
"""
import sys

import streamlit as st

from core.live.gate import PAGES
from server.pacing import SERVER
from server.runtime import forget_stream
from ui.kept import hand_back

# An emoji favicon: Streamlit's frontend draws it as an inline (data:) picture. A ":material/…:" favicon is a
# picture fetched from Google's font server (fonts.gstatic.com), which an offline workshop cannot reach. The
# pages' ":material/…:" icons below are drawn with the Material Symbols font Streamlit serves itself.
st.set_page_config(page_title="Grad-CAM Studio", page_icon="🔥", layout="wide")

pages = [
    st.Page("app_pages/explain.py", title="Explain", icon=":material/search:", default=True),
    st.Page("app_pages/occlude.py", title="Occlude", icon=":material/format_paint:", url_path="occlude"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/grid_view:", url_path="compare"),
    st.Page("app_pages/measure.py", title="Measure", icon=":material/straighten:", url_path="measure"),
    st.Page("app_pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/live.py", title="Live", icon=":material/videocam:", url_path="live"),
    st.Page("app_pages/lesson.py", title="Lesson", icon=":material/assignment:", url_path="lesson"),
    st.Page("app_pages/classroom.py", title="Class", icon=":material/groups:", url_path="class"),
]
hand_back()  # the pages' own settings outlive a visit to another page (ui/kept.py)

# While a page runs, a cold server's background import of TensorFlow waits (server/pacing.py) and so do the live
# streams' workers (core/live/gate.py): a page beside streams re-renders as fast as without them.
with SERVER.busy(), PAGES.page():
    page = st.navigation(pages)
    if page.url_path != "live":
        forget_stream()  # the Live page's streamer is not on this one (server/runtime.py)
    try:
        page.run()
    except ValueError as exc:  # the workshop database busy or unreachable: its one sentence, the session goes on
        store = sys.modules.get("core.store.engine")  # (imported by the pages that use it, not at start-up)
        if store is None or not isinstance(exc, store.StoreError):
            raise
        st.error(str(exc))
