"""What stops the Live page's stream and what it says (ui/live_problems.py), and its WebRTC configuration (ui/live.py):
pure functions, no stream (the workers and passes: tests/test_live.py)."""
import pytest


def test_a_connection_attempt_fails_after_the_timeout_or_when_it_ends_without_playing():
    from ui.live_problems import CONNECT_TIMEOUT_S, ENDED_AFTER_S, Attempt, follow

    a = follow(Attempt(), playing=False, signalling=True, now=100.0)
    assert a == Attempt(100.0, False)
    a = follow(a, False, True, 100.0 + CONNECT_TIMEOUT_S - 0.1)
    assert a == Attempt(100.0, False)  # still within the time it may take
    a = follow(a, False, True, 100.0 + CONNECT_TIMEOUT_S)
    assert a.failed
    stopped = follow(a, False, False, 200.0)
    assert stopped == Attempt(None, True)  # STOP after the failure: still said
    assert follow(follow(stopped, False, True, 210.0), True, False, 212.0) == Attempt()  # playing clears it
    # an attempt the browser ended without playing (its ICE state "failed") against a STOP pressed at once
    assert follow(Attempt(50.0), False, False, 50.0 + ENDED_AFTER_S).failed
    assert follow(Attempt(50.0), False, False, 50.0 + ENDED_AFTER_S - 0.5) == Attempt()
    assert follow(Attempt(), False, False, 60.0) == Attempt()  # never started


def test_each_cause_has_its_own_sentence_and_the_probe_comes_first():
    from ui.live_problems import DENIED, INSECURE, NO_CAMERA, NO_CONNECTION, UNKNOWN, Attempt, sentence

    ok = {"secure": True, "permission": "prompt", "cameras": 1}
    failed = Attempt(None, True)
    assert sentence(None, Attempt()) is None and sentence(ok, Attempt(5.0)) is None
    assert sentence(ok, failed) == NO_CONNECTION
    assert sentence({**ok, "cameras": 0}, failed) == NO_CAMERA
    assert sentence({**ok, "permission": "denied"}, Attempt()) == DENIED
    assert sentence({**ok, "permission": "denied", "cameras": 0}, Attempt()) == DENIED
    assert sentence({"secure": False, "permission": "unknown", "cameras": -1}, failed) == INSECURE
    assert sentence({**ok, "cameras": -1, "permission": "unknown"}, Attempt()) is None  # unknown: not claimed
    texts = [INSECURE, NO_CAMERA, DENIED, NO_CONNECTION, UNKNOWN]
    assert len(set(texts)) == 5
    assert all(t.endswith(".") and ". " not in t for t in texts), texts  # one sentence each


def test_the_webrtc_configuration_takes_the_secrets_ice_servers_and_transport_policy():
    from ui.live import rtc_config_from

    assert rtc_config_from(None) == {"iceServers": []}
    turn = {"urls": ["turn:127.0.0.1:9"], "username": "x", "credential": "y"}
    assert rtc_config_from({"ice_servers": [turn], "ice_transport_policy": "relay"}) == {
        "iceServers": [turn], "iceTransportPolicy": "relay"}
    assert rtc_config_from({"ice_transport_policy": "all"}) == {"iceServers": [], "iceTransportPolicy": "all"}
    with pytest.raises(ValueError, match='must be "all" or "relay", not \'tcp\''):
        rtc_config_from({"ice_transport_policy": "tcp"})
