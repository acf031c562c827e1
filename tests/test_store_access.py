"""The workshop store's access rules on a real SQLite file: instructor keys long, random, hashed and 1,000 random ones
refused; a hostile nickname stored and returned as plain text; a participant sees only their own rows and a code
never reveals another room; a closed room refuses joins and submits and keeps what was stored; bad values and URLs
are one sentence. The load, the instructor's views, the export and the upgrade are in test_store.py."""
import sqlite3

import pytest

from core.store import AccessDenied, RoomClosed, Store, StoreError, clean_nickname, default_url, normalise_code
from core.store.secure import CODE_ALPHABET, CODE_LENGTH


def test_instructor_keys_are_long_random_hashed_and_1000_random_ones_are_refused(tmp_path):
    import secrets

    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    room, other = store.create_room("lesson"), store.create_room("lesson")
    assert len(room.code) == CODE_LENGTH >= 8 and set(room.code) <= set(CODE_ALPHABET)
    assert not set(CODE_ALPHABET) & set("01OILU")
    assert len(room.key) == 32  # 24 random bytes: 192 bits
    for key in [secrets.token_urlsafe(24) for _ in range(990)] + [
            "", None, 42, room.key[:-1], room.key + "x", room.key.upper(), other.key, "x" * 10000, "\x00", room.code]:
        assert not store.is_instructor(room.code, key)
    with pytest.raises(AccessDenied) as denied:
        store.table(room.code, "wrong")
    assert str(denied.value).count(".") == 1 and "\n" not in str(denied.value)
    for view in (lambda: store.table(room.code, other.key), lambda: store.quiz(other.code, room.key),
                 lambda: store.answers("ZZZZZZZZZZ", room.key, "ex1"), lambda: store.close_room(room.code, None),
                 lambda: store.export_rows(other.code, room.key)):
        with pytest.raises(AccessDenied, match="^" + str(denied.value).replace(".", r"\.") + "$"):
            view()  # an unknown room and a wrong key read alike
    assert store.is_instructor(room.code, room.key) and store.is_instructor(room.code.lower(), room.key)
    assert not store.is_instructor("ZZZZZZZZZZ", room.key) and not store.is_instructor(None, room.key)
    raw = (tmp_path / "w.sqlite3").read_bytes() + (tmp_path / "w.sqlite3-wal").read_bytes()
    assert room.key.encode() not in raw  # only the hash is stored


def test_a_hostile_nickname_is_stored_and_returned_as_plain_text(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    room = store.create_room("lesson")
    hostile = "<script>alert(1)</script> **bold** [x](javascript:alert(1))\x1b[31m\x00\u202e\r\n\t" + "é" * 10000
    name, message = clean_nickname(hostile)
    assert name == "<script>alert(1)</script> **bold** [x](javascript:alert(1))"[:40]
    assert message == "Your nickname was changed: control characters removed, spaces tidied, cut to 40 characters."
    token = store.join(room.code, hostile)
    store.record_attempt(room.code, token, "ex1", {"note": hostile[:100]}, None, None, 1.0, "a")
    assert store.table(room.code, room.key)[0]["nickname"] == name
    assert store.answers(room.code, room.key, "ex1")[0]["answer"] == {"note": hostile[:100]}
    assert clean_nickname("  Ann   Lee ") == ("Ann Lee", "Your nickname was changed: spaces tidied.")
    assert clean_nickname("Zoë") == ("Zoë", None)
    for empty in ("", "   ", "\x00\x1b\u200b", None, 5):
        with pytest.raises(ValueError, match=r"^A nickname [^\n]*\.$"):
            clean_nickname(empty)
    with pytest.raises(ValueError, match="already taken .* ask your instructor for your own link"):
        store.join(room.code, name)
    # the instructor (and only with the key) finds that participant's token again by their nickname
    assert store.participant_token(room.code, room.key, name) == token
    assert store.participant_token(room.code, room.key, "nobody") is None
    with pytest.raises(AccessDenied):
        store.participant_token(room.code, "wrong", name)
    with pytest.raises(AccessDenied):
        store.participant_token(store.create_room("lesson").code, room.key, name)  # another room's key


def test_a_participant_sees_only_their_own_rows_and_a_code_never_reveals_another_room(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    a, b = store.create_room("lesson"), store.create_room("lesson")
    ann, bob, cy = store.join(a.code, "Ann"), store.join(a.code, "Bob"), store.join(b.code, "Cy")
    store.record_attempt(a.code, ann, "ex1", {"x": 1}, 0.5, True, 2.0, "1")
    store.record_attempt(a.code, bob, "ex1", {"x": 2}, 0.1, False, 2.0, "1")  # the same attempt id: another person
    store.record_attempt(b.code, cy, "ex1", {"x": 3}, 0.9, True, 2.0, "1")
    assert [r["answer"] for r in store.own_progress(a.code, ann)] == [{"x": 1}]
    assert store.own_progress(b.code, ann) == [] and store.own_progress(a.code, cy) == []
    assert store.own_progress(a.code, None) == [] and store.own_progress("nonsense", ann) == []
    with pytest.raises(ValueError, match="not a participant of this room"):
        store.record_attempt(b.code, ann, "ex1", {}, None, None, 1.0, "2")  # a token of room a in room b
    assert store.room("ZZZZZZZZZZ") is None and store.room("'; DROP TABLE rooms; --") is None
    assert store.room(f"{a.code[:5]}-{a.code[5:].lower()}")["code"] == a.code
    assert set(store.room(a.code)) == {"code", "lesson_id", "created", "closed"}
    with pytest.raises(ValueError, match="^No room has this code"):
        store.join("ZZZZZZZZZZ", "Dee")
    assert [r["nickname"] for r in store.table(a.code, a.key)] == ["Ann", "Bob"]
    assert normalise_code(a.code[:-1]) is None


def test_own_quiz_and_nickname_find_only_this_participants_rows_in_this_room(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    a, b = store.create_room("lesson"), store.create_room("lesson")
    ann, bob, cy = store.join(a.code, "Ann"), store.join(a.code, "Bob"), store.join(b.code, "Cy")
    store.record_quiz(a.code, ann, "before", {"q1": 0}, 0, 1, "1")
    store.record_quiz(a.code, bob, "before", {"q1": 1}, 1, 1, "1")
    store.record_quiz(a.code, ann, "after", {"q1": 1}, 1, 1, "2")
    assert [(r["phase"], r["answers"], r["right"], r["asked"], r["attempt_id"]) for r in store.own_quiz(a.code, ann)] \
        == [("before", {"q1": 0}, 0, 1, "1"), ("after", {"q1": 1}, 1, 1, "2")]
    assert store.own_quiz(b.code, ann) == [] and store.own_quiz(a.code, cy) == [] and store.own_quiz(a.code, None) == []
    assert store.nickname(a.code, ann) == "Ann" and store.nickname(a.code.lower(), bob) == "Bob"
    assert store.nickname(b.code, ann) is None and store.nickname(a.code, "x" * 65) is None
    assert store.nickname("nonsense", ann) is None


def test_a_closed_room_refuses_joins_and_submits_and_keeps_what_was_stored(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    room = store.create_room("lesson")
    ann, bob = store.join(room.code, "Ann"), store.join(room.code, "Bob")
    store.record_quiz(room.code, ann, "before", {"q1": 0}, 2, 6, "q1")
    store.record_quiz(room.code, ann, "after", {"q1": 1}, 5, 6, "q2")
    store.record_quiz(room.code, bob, "before", {"q1": 1}, 3, 6, "q1")
    assert not store.record_quiz(room.code, bob, "before", {"q1": 1}, 3, 6, "q1")
    summary = store.quiz(room.code, room.key)
    assert summary == pytest.approx({"before_mean": 5 / 12, "after_mean": 5 / 6, "paired_gain": 0.5, "pairs": 1,
                                     "n_before": 2, "n_after": 1})
    store.record_attempt(room.code, ann, "ex1", {}, 0.2, False, 3.0, "a1")
    store.record_attempt(room.code, ann, "ex1", {}, 0.9, True, 4.0, "a2")
    store.record_attempt(room.code, bob, "ex2", {}, 0.3, False, 5.0, "b1")
    assert store.best_score(room.code, "ex1") == 0.9 and store.best_score(room.code, "ex2") is None
    store.record_attempt(room.code, bob, "ex2", {}, 0.1, False, 5.0, "b0")  # smaller, but it was wrong
    assert store.best_score(room.code, "ex2") is None and store.best_score("ZZZZZZZZZZ", "ex1") is None
    assert store.table(room.code, room.key) == [
        {"nickname": "Ann", "ex1": {"done": True, "score": 0.9, "correct": True, "seconds": 4.0, "attempts": 2},
         "ex2": {"done": False, "score": None, "correct": None, "seconds": None, "attempts": 0}},
        {"nickname": "Bob", "ex1": {"done": False, "score": None, "correct": None, "seconds": None, "attempts": 0},
         "ex2": {"done": False, "score": 0.1, "correct": False, "seconds": 5.0, "attempts": 2}}]
    store.close_room(room.code, room.key)
    assert store.room(room.code)["closed"]
    for submit in (lambda: store.record_attempt(room.code, ann, "ex1", {}, 1.0, True, 1.0, "a3"),
                   lambda: store.record_quiz(room.code, bob, "after", {}, 6, 6, "q9"),
                   lambda: store.join(room.code, "Late")):
        with pytest.raises(RoomClosed, match="^This room is closed"):
            submit()
    assert len(store.export_rows(room.code, room.key)) == 7 and len(store.own_progress(room.code, ann)) == 2


def test_bad_values_and_urls_are_one_sentence(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    room = store.create_room("lesson")
    ann = store.join(room.code, "Ann")
    bad = [lambda: store.record_attempt(room.code, ann, "ex1", {"x": float("nan")}, None, None, 1.0, "a"),
           lambda: store.record_attempt(room.code, ann, "ex1", {"x": "y" * 70000}, None, None, 1.0, "a"),
           lambda: store.record_attempt(room.code, ann, "ex1", {}, "high", None, 1.0, "a"),
           lambda: store.record_attempt(room.code, ann, "", {}, None, None, 1.0, "a"),
           lambda: store.record_attempt(room.code, ann, "ex1", {}, None, None, 1.0, "a" * 65),
           lambda: store.record_quiz(room.code, ann, "during", {}, 1, 2, "q"),
           lambda: store.record_quiz(room.code, ann, "after", {}, 3, 2, "q"),
           lambda: store.create_room(""), lambda: Store("sqlite://"), lambda: Store("not a url")]
    for call in bad:
        with pytest.raises(ValueError) as e:
            call()
        assert "\n" not in str(e.value) and str(e.value).endswith(".")
    monkeypatch.setenv("GRADCAM_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRADCAM_STUDIO_DB", raising=False)
    assert default_url() == f"sqlite:///{tmp_path / 'cache' / 'workshop.sqlite3'}"
    Store().close()
    assert (tmp_path / "cache" / "workshop.sqlite3").is_file()
    monkeypatch.setenv("GRADCAM_STUDIO_DB", f"sqlite:///{tmp_path / 'other.sqlite3'}")
    assert Store().url.database == str(tmp_path / "other.sqlite3")
    with sqlite3.connect(tmp_path / "foreign.sqlite3") as conn:
        conn.execute("CREATE TABLE rooms (x INTEGER)")
    with pytest.raises(StoreError, match="no schema_version table"):
        Store(f"sqlite:///{tmp_path / 'foreign.sqlite3'}")
