"""The Live page's Streamlit side: its controls, the browser's camera through streamlit-webrtc, the figures that
follow the stream, Freeze, the sentence that says what stops the stream (:mod:`ui.live_problems`) and the snapshot
fallback.

The session's :class:`core.live.LiveWorker` lives in ``st.session_state`` (nothing per viewer in this module). The
camera's callback runs in streamlit-webrtc's own thread: it hands each frame to the worker and sends back the newest
overlay at once, never waiting for the network. Every control takes effect at the next frame
(:meth:`~core.live.LiveWorker.configure`); the stream is never restarted for it.
"""
from __future__ import annotations

import functools
import logging
import sys
import threading

import numpy as np
import streamlit as st

from core import models
from core.cam import methods
from core.imaging import images, render
from core.live import LiveSettings, LiveWorker, banner, live_methods, why_not_live
from server import runtime

from . import live_problems
from .kept import keep
from .pictures import show
from .resources import decode_upload, engine_pool, start_notice, trained_models
from .sidebar import _load, init_state, model_texts

FOLLOW, FIXED = "Follow the top-1 of each frame", "A fixed class"
STATS_EVERY_S = 1.0  # the figures beside the stream are redrawn this often while it plays
CAMERA = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 30}}, "audio": False}


def stream_unavailable() -> str | None:
    """Why this server cannot stream (one sentence), or None: streamlit-webrtc missing, or its SRTP library not loaded
    before TensorFlow (loading it after crashes the process; :mod:`server` loads it first)."""
    if "pylibsrtp" not in sys.modules and "tensorflow" in sys.modules:
        return ("This server loaded TensorFlow before WebRTC's library, which would then crash it: start it with "
                "`streamlit run app.py` for the live stream; snapshots work meanwhile.")
    try:
        import streamlit_webrtc  # noqa: F401
    except ImportError:
        return "The live stream needs streamlit-webrtc (pip install -r requirements.txt); snapshots work meanwhile."
    return None


_log_lock = threading.Lock()


def log_workers() -> None:
    """Send the live workers' start and end lines (``core.live``: which worker, why, how many run) to the server's
    log (stderr), once per process."""
    log = logging.getLogger("core.live")
    with _log_lock:
        if not log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False


def worker() -> LiveWorker:
    """This session's live worker (made on first use, kept in the session)."""
    if "live_worker" not in st.session_state:
        st.session_state["live_worker"] = LiveWorker(name="gradcam-live")
    return st.session_state["live_worker"]


POLICIES = ("all", "relay")  # RTCConfiguration.iceTransportPolicy: "relay" sends media only through TURN servers


def rtc_config_from(section) -> dict:
    """The WebRTC configuration of a ``[webrtc]`` secrets section: its ``ice_servers`` (none: enough on localhost
    and a local network, where browser and server reach each other directly) and its optional
    ``ice_transport_policy`` (one of :data:`POLICIES`; ValueError with a sentence for another)."""
    section = section or {}
    servers = section.get("ice_servers")
    config = {"iceServers": [dict(s) for s in servers] if servers else []}
    policy = section.get("ice_transport_policy")
    if policy is not None:
        if policy not in POLICIES:
            raise ValueError(f'The secrets\' [webrtc] ice_transport_policy must be "all" or "relay", not {policy!r}.')
        config["iceTransportPolicy"] = policy
    return config


def rtc_configuration() -> dict:
    """The WebRTC configuration from Streamlit's secrets (``[webrtc]``, see docs/live.md); a bad policy is said in
    one line on the page and left out."""
    try:
        section = st.secrets.get("webrtc", {})
    except Exception:  # no secrets file at all: Streamlit raises where it is read
        section = {}
    try:
        return rtc_config_from(section)
    except ValueError as exc:
        st.warning(str(exc))
        return rtc_config_from({"ice_servers": section.get("ice_servers")})


def controls() -> LiveSettings | None:
    """The sidebar's controls (model, layer, method, alpha, colormap, class) as the worker's settings; None where
    the model cannot be used (the sidebar says why)."""
    notice = start_notice()
    init_state()  # the model, alpha and colormap are the other pages' too
    st.sidebar.title("Grad-CAM Studio")
    trained = trained_models()
    names = list(models.REGISTRY) + list(trained)
    if st.session_state.get("model") not in names:
        st.session_state["model"] = models.DEFAULT_MODEL
    titles, help_ = model_texts(trained)
    name = st.sidebar.selectbox("Model", names, key="model", format_func=titles.get, help=help_)
    engine = _load(name, notice)
    if engine is None:
        return None
    spec = engine.spec
    shapes = {n: engine.layer_shape(n) for n in spec.layers}
    layer = st.sidebar.select_slider(
        "Layer (early → late)", options=list(spec.layers),
        key=keep(f"live_layer_{spec.name}", spec.default_layer, choices=spec.layers),
        format_func=lambda n: f"{n} · {shapes[n][0]}×{shapes[n][1]}",
        help="The live view computes this one layer's map for every frame; the later the layer, the faster.")
    offered = live_methods()
    start = st.session_state.get("method") if st.session_state.get("method") in offered else methods.DEFAULT
    method = st.sidebar.selectbox("Method", offered, key=keep("live_method", start, choices=offered),
                                  format_func=lambda m: methods.REGISTRY[m].title,
                                  help="The methods cheap enough for every frame.")
    with st.sidebar.expander("Why are the other methods not here?"):
        for other in methods.REGISTRY:
            if other not in offered:
                st.caption(why_not_live(other))
    alpha = st.sidebar.slider("Heatmap opacity (alpha)", 0.0, 1.0, step=0.05, key="alpha")
    colormap = st.sidebar.selectbox("Colormap", render.COLORMAPS, key="colormap")
    how = st.sidebar.radio("Class to explain", (FOLLOW, FIXED), key=keep("live_class_mode", FOLLOW))
    class_index = None
    if how == FIXED:
        latest = worker().latest
        start = latest.class_index if latest is not None and latest.model == spec.name else 0
        key = keep(f"live_class_{spec.name}", start, low=0, high=spec.num_classes - 1)
        class_index = st.sidebar.selectbox(f"Class (any of {spec.num_classes}; type to search)",
                                           list(range(spec.num_classes)), key=key,
                                           format_func=lambda i: f"{i} · {spec.label(i)}")
    source = trained[name] if name in trained else name
    return LiveSettings(functools.partial(engine_pool().get, source), layer=layer, method=method, alpha=alpha,
                        colormap=colormap, class_index=class_index)


def frame_callback(live: LiveWorker):
    """The callback streamlit-webrtc calls with each camera frame (in its own thread): the frame to the worker, the
    newest overlay (with its class written on it) back to the browser; the camera's own frame until the first
    overlay is ready."""
    import av

    shown = {"number": None, "picture": None}

    def callback(frame):
        rgb = frame.to_ndarray(format="rgb24")
        got = live.submit(rgb)
        if got is None:
            return frame
        if shown["number"] != got.number:  # the label is drawn once per explained frame, not per camera frame
            shown["number"], shown["picture"] = got.number, banner(got)
        return av.VideoFrame.from_ndarray(shown["picture"], format="rgb24")

    return callback


def figures(live: LiveWorker) -> None:
    """The newest frame's top-3 and the stream's figures (redrawn every :data:`STATS_EVERY_S` while it plays)."""
    got, s = live.latest, live.stats()
    if got is None:
        st.caption("Waiting for the first frame…")
        return
    st.markdown(f"**{got.label}** · {got.method} at `{got.layer}` of {got.model}")
    for _, label, p in got.top:
        st.progress(float(p), text=f"{label} · {p:.1%}")
    c1, c2, c3 = st.columns(3)
    c1.metric("Frames / s", f"{s.fps:.1f}")
    c2.metric("Latency p50", "—" if s.latency_ms_p50 is None else f"{s.latency_ms_p50:.0f} ms")
    c3.metric("Latency p95", "—" if s.latency_ms_p95 is None else f"{s.latency_ms_p95:.0f} ms")
    st.caption(f"Processed frames: {s.processed} · dropped (a newer one came first): {s.dropped}")
    if got.note:
        st.caption(got.note)
    if s.error:
        st.warning(f"The last frame could not be explained: {s.error}")


def freeze(live: LiveWorker) -> None:
    """Make the newest explained frame the session's photo (what Explain, Occlude and Measure explain) and open
    Explain."""
    got = live.latest
    if got is None:
        st.warning("No frame has been explained yet: start the camera first.")
        return
    st.session_state.update(frozen(got, st.session_state.get("live_class_mode") == FIXED))
    st.switch_page("app_pages/explain.py")


def frozen(got, fixed: bool) -> dict:
    """The session state that makes an explained frame the session's photo: the frame as the upload, its class where
    the class was fixed (else the top-1), and the photo's key, so the sidebar takes it as the photo shown, not as a
    new one whose class it resets."""
    photo = decode_upload(render.to_png(got.rgb), "webcam frame.png")
    return {"upload": photo, "class_index": got.class_index if fixed else None,
            "photo_key": images.pixel_hash(photo.rgb)}


def snapshots(live: LiveWorker) -> None:
    """The fallback without a stream: ``st.camera_input``'s photo explained with the same settings."""
    shot = st.camera_input("Take a snapshot", key="live_snapshot")
    if shot is None:
        return
    try:
        photo = decode_upload(shot.getvalue(), "webcam snapshot")
    except ValueError as exc:
        st.error(str(exc))
        return
    got = live.explain(np.ascontiguousarray(photo.rgb))  # kept as the newest: what Freeze takes
    if got is not None:
        c1, c2 = st.columns([3, 2])
        show(c1, banner(got), caption=f"{got.method} · {got.label}")
        with c2:
            figures(live)


def page() -> None:
    """The whole Live page below its title."""
    settings = controls()
    if settings is None:
        runtime.forget_stream()
        st.stop()
    log_workers()
    live = worker()
    live.configure(settings)
    why = stream_unavailable()
    if why:
        st.info(why)
    snap = st.toggle("Snapshots instead of the live stream", key=keep("live_snapshots", False), disabled=bool(why),
                     help="For a browser without a camera stream or a network that blocks WebRTC: one photo at a time.")
    if snap or why:
        runtime.forget_stream()
        live.stop()
        snapshots(live)
    else:
        from streamlit_webrtc import WebRtcMode, webrtc_streamer

        left, right = st.columns([3, 2])
        with left:
            runtime.keep_stream("live")  # a run counted late is not a page left (server/runtime.py)
            ctx = webrtc_streamer(key="live", mode=WebRtcMode.SENDRECV, video_frame_callback=frame_callback(live),
                                  rtc_configuration=rtc_configuration(), media_stream_constraints=CAMERA,
                                  async_processing=True)
            runtime.stream_drawn()
        with right:
            if ctx.state.playing:
                st.fragment(figures, run_every=STATS_EVERY_S)(live)
            else:
                live.stop()
                st.caption("Press START: every frame of your camera is explained as it comes, with the settings in "
                           "the sidebar (they apply at once, without restarting the stream).")
        stopped_by = live_problems.sentence(live_problems.probe(), live_problems.watch(ctx))
        if stopped_by:
            st.warning(stopped_by)
            snapshots(live)
        elif not ctx.state.playing:
            st.caption(live_problems.UNKNOWN)
    if st.button("Freeze: explain this frame on Explain", key="live_freeze", type="primary",
                 help="The newest explained frame becomes the photo of Explain, Occlude and Measure."):
        freeze(live)
