"""Real-browser test of the Live page where the WebRTC connection cannot be made: the server's secrets (given to
``streamlit run`` through ``STREAMLIT_SECRETS_FILES``, as ``--secrets.files`` would) name one TURN server that
nothing answers (``127.0.0.1:9``) and ``ice_transport_policy = "relay"``, so the browser may send media only
through it and the connection never forms. The camera works (Chromium's fake device). After START the page says,
no sooner than :data:`ui.live_problems.CONNECT_TIMEOUT_S`, that the connection could not be made, and offers
``st.camera_input`` under it. The screenshot goes to artifacts/e2e/.
"""
import re
import time

import pytest

from tests.e2e.browser import ARTIFACTS, Server, chromium_page
from tests.e2e.test_live_browser import FAKE_UI, open_live, snapshot_camera_offered, start_stream
from ui.live_problems import CONNECT_TIMEOUT_S, NO_CONNECTION

SERVER_LOG = "e2e-live-problems-streamlit.log"
SECRETS = """[webrtc]
ice_servers = [{urls = ["turn:127.0.0.1:9"], username = "x", credential = "y"}]
ice_transport_policy = "relay"
"""


@pytest.fixture(scope="module")
def relay_only_server(tmp_path_factory):
    """A server whose WebRTC may only relay through a TURN server that does not exist."""
    secrets = tmp_path_factory.mktemp("secrets") / "secrets.toml"
    secrets.write_text(SECRETS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "STREAMLIT_SECRETS_FILES": str(secrets)}
    with Server(log_path=ARTIFACTS.parent / SERVER_LOG, env=env) as srv:
        yield srv.url


def test_a_connection_that_cannot_be_made_is_said_and_snapshots_are_offered(relay_only_server):
    with chromium_page(1000, [FAKE_UI, "--use-fake-device-for-media-stream"]) as pg:
        config = []
        pg.on("console", lambda m: m.text.startswith("RTCConfiguration") and config.append(m.text))
        open_live(pg, relay_only_server)
        main = pg.locator("[data-testid='stMain']")
        start_stream(pg)
        started = time.monotonic()
        main.get_by_text(NO_CONNECTION).wait_for(timeout=(CONNECT_TIMEOUT_S + 45) * 1000)
        took = time.monotonic() - started
        assert took >= CONNECT_TIMEOUT_S, took  # said once the attempt had its time, not before
        # the browser was given the secrets' policy (streamlit-webrtc logs the configuration it uses)
        assert config and "iceTransportPolicy: relay" in config[0], config
        snapshot_camera_offered(pg, NO_CONNECTION)
        frame = pg.frame_locator("iframe[title*='webrtc']").first
        assert not re.search(r"NotFoundError|NotAllowedError", frame.locator("body").inner_text())  # the camera worked
        pg.screenshot(path=str(ARTIFACTS / "live-no-connection.png"), full_page=True)
