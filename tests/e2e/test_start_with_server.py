"""``streamlit run app.py`` (``make run``) starts its start-up work with the server (``app.py``'s lifespan):
TensorFlow is in the server's memory before anyone has asked for a page."""
import time
from pathlib import Path

from .browser import Server


def loaded_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_tensorflow_loads_with_the_server_before_any_request():
    with Server(env={"TF_CPP_MIN_LOG_LEVEL": "2"}) as server:  # it waits for the port, requesting nothing
        deadline = time.time() + 60
        while "libtensorflow" not in loaded_libraries(server.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert "libtensorflow" in loaded_libraries(server.pid)
