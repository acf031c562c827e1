"""The workshop store on a real SQLite file: 30 participants submitting at once, a restart and a killed writer
in the middle, the upgrade of a version-1 database, and what a key, a code and a nickname can and cannot do.
The same load runs against a real PostgreSQL server in test_store_postgres.py."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from core.store import (AccessDenied, RoomClosed, Store, StoreError, clean_nickname, default_url, normalise_code)
from core.store.schema import SchemaError
from core.store.secure import CODE_ALPHABET, CODE_LENGTH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEOPLE, ANSWERS, EXERCISES = 30, 20, 10
REPEATED = (3, 11)  # each participant submits these answers twice (a retried submit)


def classroom_load(store_at, restart=None, after: int = 200) -> dict:
    """30 threads join one room and submit 20 answers each (two of them twice), all starting at one barrier;
    ``restart()`` runs once ``after`` answers were acknowledged. ``store_at()`` is the store to use now.
    Returns the room, its key, what the calls returned and any errors."""
    room = store_at().create_room("gradcam-in-45-minutes")
    start, lock = threading.Barrier(PEOPLE), threading.Lock()
    seen = {"stored": 0, "repeats": 0, "acked": set(), "errors": [], "people": {}}
    reached = threading.Event()

    def participant(n):
        try:
            start.wait()
            token = store_at().join(room.code, f"pupil {n:02d}")
            with lock:
                seen["people"][token] = n
            for i in range(ANSWERS):
                for _ in range(2 if i in REPEATED else 1):
                    new = store_at().record_attempt(
                        room.code, token, f"ex{i % EXERCISES}", {"box": [0.1, 0.2, 0.5 + i / 100, 0.9], "n": n},
                        score=i / ANSWERS, correct=(i + n) % 3 != 0, seconds=1.5 + i, attempt_id=f"{n}-{i}")
                    with lock:
                        seen["stored" if new else "repeats"] += 1
                        seen["acked"].add(f"{n}-{i}")
                        if len(seen["acked"]) >= after:
                            reached.set()
        except Exception as e:  # noqa: BLE001 (every error is reported by the test)
            seen["errors"].append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=participant, args=(n,)) for n in range(PEOPLE)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    if restart is not None:
        reached.wait(120)
        restart()
    for t in threads:
        t.join(300)
    seen["seconds"] = time.perf_counter() - t0
    return {"room": room, **seen}


def check_load(store, load, restarted: bool) -> None:
    """Exactly 600 attempts, one per attempt id, each participant's own and the instructor's counts agree."""
    assert load["errors"] == []
    room = load["room"]
    rows = store.export_rows(room.code, room.key)
    ids = [r["attempt_id"] for r in rows]
    assert len(ids) == PEOPLE * ANSWERS == len(set(ids)) == len(load["acked"])
    assert set(ids) == load["acked"]
    if not restarted:  # a submit whose commit outlived a lost connection is reported as a repeat when retried
        assert (load["stored"], load["repeats"]) == (PEOPLE * ANSWERS, PEOPLE * len(REPEATED))
    table = store.table(room.code, room.key)
    assert len(table) == PEOPLE
    assert all(row[f"ex{e}"]["attempts"] == ANSWERS // EXERCISES for row in table for e in range(EXERCISES))
    for token, n in load["people"].items():
        own = store.own_progress(room.code, token)
        assert sorted(r["attempt_id"] for r in own) == sorted(f"{n}-{i}" for i in range(ANSWERS))
        assert all(r["answer"]["n"] == n for r in own)
    assert len(store.answers(room.code, room.key, "ex0")) == PEOPLE


def test_thirty_participants_at_once_with_a_restart_store_every_answer_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    holder = [Store(url)]

    def restart():  # the server restarts: the store is closed and a new one opened on the same file
        old, holder[0] = holder[0], Store(url)
        old.close()

    load = classroom_load(lambda: holder[0], restart=restart)
    check_load(holder[0], load, restarted=False)  # connections in use finish their transaction before closing
    mode = sqlite3.connect(tmp_path / "workshop.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    print(f"30 x 20 answers (+60 repeats) on SQLite: {load['seconds']:.2f} s")


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from core.store import Store
store = Store(sys.argv[2])
token = store.join(sys.argv[3], "writer")
for i in range(100000):
    store.record_attempt(sys.argv[3], token, "ex1", {"i": i}, 0.5, True, 1.0, f"w{i}")
    print(f"w{i}", flush=True)
"""


def test_a_killed_writer_loses_nothing_it_was_told_was_stored(tmp_path):
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    store = Store(url)
    room = store.create_room("lesson")
    child = subprocess.Popen([sys.executable, "-c", WRITER, ROOT, url, room.code], stdout=subprocess.PIPE,
                             text=True)
    acked = [child.stdout.readline().strip() for _ in range(150)]
    child.send_signal(signal.SIGKILL)
    acked += child.stdout.read().split()
    child.wait(30)
    stored = {r["attempt_id"] for r in Store(url).export_rows(room.code)}
    assert set(acked) <= stored and len(acked) >= 150
    assert len(stored) <= len(acked) + 1  # at most the one between its commit and its print


def v1_schema(dialect: str) -> list[str]:
    """Version 1's tables as its studio created them: attempts without attempt_id and answer, quiz without
    attempt_id; and a room with two participants' rows."""
    serial = "SERIAL PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version VALUES (1)",
        "CREATE TABLE rooms (code VARCHAR(16) PRIMARY KEY, lesson_id VARCHAR(200) NOT NULL, "
        "key_hash VARCHAR(64) NOT NULL, created DOUBLE PRECISION NOT NULL, closed BOOLEAN NOT NULL)",
        "CREATE TABLE participants (id VARCHAR(32) PRIMARY KEY, room_code VARCHAR(16) NOT NULL REFERENCES rooms, "
        "nickname VARCHAR(40) NOT NULL, joined DOUBLE PRECISION NOT NULL, "
        "CONSTRAINT uq_participants_nickname UNIQUE (room_code, nickname))",
        f"CREATE TABLE attempts (id {serial}, room_code VARCHAR(16) NOT NULL REFERENCES rooms, "
        "participant_id VARCHAR(32) NOT NULL REFERENCES participants, exercise_id VARCHAR(100) NOT NULL, "
        "score DOUBLE PRECISION, correct BOOLEAN, seconds DOUBLE PRECISION NOT NULL, "
        "created DOUBLE PRECISION NOT NULL)",
        f"CREATE TABLE quiz (id {serial}, room_code VARCHAR(16) NOT NULL REFERENCES rooms, "
        "participant_id VARCHAR(32) NOT NULL REFERENCES participants, phase VARCHAR(10) NOT NULL, "
        "answers TEXT NOT NULL, n_right INTEGER NOT NULL, n_asked INTEGER NOT NULL, created DOUBLE PRECISION NOT NULL)",
        # the instructor key of room VQR2345678 is "old-key" (its SHA-256 below)
        "INSERT INTO rooms VALUES ('VQR2345678', 'lesson', "
        "'762c08fc17a1cc5f00d248f8b50f2f2f4d17ff2934ac31e64deacb3f5bb3f2ec', 1.0, FALSE)",
        "INSERT INTO participants VALUES ('p-ann', 'VQR2345678', 'Ann', 2.0), ('p-bob', 'VQR2345678', 'Bob', 3.0)",
        "INSERT INTO attempts (room_code, participant_id, exercise_id, score, correct, seconds, created) VALUES "
        "('VQR2345678', 'p-ann', 'ex1', 0.5, TRUE, 10, 4.0), ('VQR2345678', 'p-ann', 'ex2', NULL, NULL, 11, 5.0), "
        "('VQR2345678', 'p-bob', 'ex1', 0.25, FALSE, 12, 6.0)",
        "INSERT INTO quiz (room_code, participant_id, phase, answers, n_right, n_asked, created) VALUES "
        "('VQR2345678', 'p-ann', 'before', '{\"q1\": 0}', 2, 6, 1.5), "
        "('VQR2345678', 'p-ann', 'after', '{\"q1\": 1}', 5, 6, 7.0)",
    ]


def check_upgrade(url: str) -> None:
    """Open a version-1 database with the store: every row kept, the new columns there, a retried submit once."""
    store = Store(url)
    assert store.upgraded_from == 1
    rows = store.export_rows("VQR2345678")
    assert [(r["nickname"], r["item"], r["attempt_id"]) for r in rows if r["kind"] == "attempt"] == \
        [("Ann", "ex1", "v1-1"), ("Ann", "ex2", "v1-2"), ("Bob", "ex1", "v1-3")]
    assert [(r["item"], r["right"], r["attempt_id"]) for r in rows if r["kind"] == "quiz"] == \
        [("before", 2, "v1-1"), ("after", 5, "v1-2")]
    assert all(json.loads(r["answer"]) == {} for r in rows if r["kind"] == "attempt")
    assert store.record_attempt("VQR2345678", "p-bob", "ex2", {"layer": "block6"}, None, True, 3.0, "new-1")
    assert not store.record_attempt("VQR2345678", "p-bob", "ex2", {"layer": "block6"}, None, True, 3.0, "new-1")
    assert store.own_progress("VQR2345678", "p-bob")[-1]["answer"] == {"layer": "block6"}
    store.close()
    store = Store(url)
    assert store.upgraded_from == 2  # opened again: nothing left to upgrade
    assert store.is_instructor("VQR2345678", "old-key") and len(store.table("VQR2345678", "old-key")) == 2
    store.close()


def test_a_version_1_database_is_upgraded_keeping_every_row(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        for statement in v1_schema("sqlite"):
            conn.execute(statement)
    check_upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 3")
    with pytest.raises(SchemaError, match="newer than this studio's 2"):
        Store(f"sqlite:///{path}")


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
    with pytest.raises(ValueError, match="already taken"):
        store.join(room.code, name)


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
