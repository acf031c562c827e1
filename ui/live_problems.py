"""Why the Live page's stream cannot run, in one sentence: no camera, the camera's permission denied, a page not on
https, or no WebRTC connection to the server.

streamlit-webrtc sends Python only ``playing``, the SDP offer and the ICE candidates; a failed ``getUserMedia``
stays in its own box. So a small component (``camera_probe/index.html``, Streamlit's component protocol in plain
JavaScript) reports what the browser can give: whether ``navigator.mediaDevices`` exists (``secure``), whether the
camera permission is ``"denied"`` (else ``"not denied"``) and whether ``enumerateDevices`` lists a camera
(``cameras``: 0, 1 for some, -1 unknown). It sends nothing while all is well, then a value only where one of these
changes: each value re-runs the page, and a re-run while streamlit-webrtc hands the browser its SDP answer can cost
the connection. The
connection is judged here from streamlit-webrtc's state: an offer sent (signalling) that is not playing
:data:`CONNECT_TIMEOUT_S` later, or that ended without ever playing, is a connection that could not be made.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

CONNECT_TIMEOUT_S = 15.0  # an offer not playing this long after it was sent: the connection could not be made
WATCH_EVERY_S = 1.0  # how often a connecting stream is looked at
ENDED_AFTER_S = 3.0  # an attempt that ended without playing after at least this long failed (sooner: STOP pressed)

INSECURE = ("The live stream cannot start because this page is not on https: browsers give the camera only to https "
            "pages and localhost, so open it through https (or on localhost) — the snapshot camera below needs that "
            "too.")
NO_CAMERA = ("The live stream cannot start because this browser finds no camera: connect one and press START again, "
             "or take a snapshot below once one is there.")
DENIED = ("The live stream cannot start because this browser was denied the camera for this site: allow it in the "
          "site's settings (the icon left of the address) and reload the page — the snapshot camera below needs the "
          "same permission.")
NO_CONNECTION = (f"The live stream cannot run because the WebRTC connection to this server could not be made within "
                 f"{CONNECT_TIMEOUT_S:.0f} s (a network that blocks it, or a hosted server without ICE (TURN) "
                 f"servers: see docs/live.md) — take snapshots below instead.")
UNKNOWN = ("No live picture after START? The box above says what stopped it; \"Snapshots instead of the live stream\" "
           "works without one.")

_probe = components.declare_component("camera_probe", path=str(Path(__file__).with_name("camera_probe")))


@dataclass(frozen=True)
class Attempt:
    """The current connection attempt as seen from Python: when its offer was first seen (None: no attempt), and
    whether it counts as failed."""

    since: float | None = None
    failed: bool = False


def follow(attempt: Attempt, playing: bool, signalling: bool, now: float) -> Attempt:
    """The attempt after a look at streamlit-webrtc's state at time ``now`` (seconds, monotonic): playing clears
    it; signalling starts it or marks it failed after :data:`CONNECT_TIMEOUT_S`; an attempt that ends without
    playing failed if it lasted :data:`ENDED_AFTER_S` or more (the browser gave up: its ICE state "failed")."""
    if playing:
        return Attempt()
    if signalling:
        since = now if attempt.since is None else attempt.since
        return Attempt(since, attempt.failed or now - since >= CONNECT_TIMEOUT_S)
    if attempt.since is not None and not attempt.failed:
        return Attempt(None, now - attempt.since >= ENDED_AFTER_S)
    return Attempt(None, attempt.failed)


def sentence(probe: dict | None, attempt: Attempt) -> str | None:
    """The one sentence that says what stops the stream, from the browser's probe (``secure``, ``permission``,
    ``cameras``; None before it reports) and the connection attempt; None where nothing is known to stop it."""
    probe = probe or {}
    if probe.get("secure") is False:
        return INSECURE
    if probe.get("permission") == "denied":
        return DENIED
    if probe.get("cameras") == 0:
        return NO_CAMERA
    if attempt.failed:
        return NO_CONNECTION
    return None


def probe() -> dict | None:
    """The browser's camera probe (invisible; None until it reports)."""
    value = _probe(key="live_camera_probe", default=None)
    return value if isinstance(value, dict) else None


def watch(ctx, key: str = "live_attempt") -> Attempt:
    """Follow the connection attempt of the streamer context ``ctx`` in ``st.session_state[key]``; while it is
    signalling and not yet failed, look again every :data:`WATCH_EVERY_S` and rerun the page when it fails."""
    attempt = follow(st.session_state.get(key, Attempt()), ctx.state.playing, ctx.state.signalling, time.monotonic())
    st.session_state[key] = attempt
    if attempt.since is not None and not attempt.failed:

        @st.fragment(run_every=WATCH_EVERY_S)
        def look() -> None:
            now = follow(st.session_state.get(key, Attempt()), ctx.state.playing, ctx.state.signalling,
                         time.monotonic())
            st.session_state[key] = now
            if now.failed:  # only then: a stream that starts or stops re-runs the page itself (its value changes),
                st.rerun(scope="app")  # and a re-run from here beside that one can reset the stream to START

        look()
    return attempt
