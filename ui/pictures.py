"""Pictures sent inside the page's own messages (data URLs), not as Streamlit media files.

Streamlit stores an ``st.image`` array as a media file and the browser fetches it afterwards. A session's
run forgets its media files when it starts, and *any* session's run that ends deletes the files no
session refers to. With many sessions at once, a session whose page runs twice in a row (a new photo on
the Occlude page: the new canvas reports itself) could lose its pictures to another session's clean-up
before its browser fetched them; the second run then names the same file again, so the browser never
asks again and the picture stays broken (the load test, ``tests/e2e/test_load.py``, caught it). A data
URL travels with the element itself: there is nothing to fetch, so nothing to lose.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 90


def data_url(rgb: np.ndarray, fmt: str = "JPEG") -> str:
    """An (H, W, 3) uint8 picture as a ``data:`` URL: JPEG for photos and overlays, PNG for blocky maps."""
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, np.uint8))
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, "PNG", compress_level=1)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def show(container, rgb: np.ndarray, caption: str | None = None, fmt: str = "JPEG", **kwargs) -> None:
    """``container.image`` of a picture as a data URL (stretched to the column unless told otherwise)."""
    kwargs.setdefault("width", "stretch")
    container.image(data_url(rgb, fmt), caption=caption, **kwargs)
