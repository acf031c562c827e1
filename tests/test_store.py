"""The workshop store on a real SQLite file: 30 participants submitting at once, a writer process killed and a new
one continuing, the instructor's views while people join, the write lock's wait, the CSV export and its command,
and the upgrade of a version-1 database; what a key, a code and a nickname can and cannot do is in
test_store_access.py. The same load, views and upgrade run against a real PostgreSQL server in
test_store_postgres.py."""
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from core.store import Store, StoreUnavailable, csv_text
from core.store.schema import SchemaError

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


def test_thirty_participants_at_once_and_a_store_reopened_midway_store_every_answer_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    holder = [Store(url)]

    def reopen():  # a new Store on the same file takes over; the old one is closed under the running threads
        old, holder[0] = holder[0], Store(url)
        old.close()

    load = classroom_load(lambda: holder[0], restart=reopen)
    check_load(holder[0], load, restarted=False)  # connections in use finish their transaction before closing
    mode = sqlite3.connect(tmp_path / "workshop.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    print(f"30 x 20 answers (+60 repeats) on SQLite: {load['seconds']:.2f} s")


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from core.store import Store
url, code, token, first, last = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
store = Store(url)
token = token if token != "-" else store.join(code, "writer")
print(token, flush=True)
for i in range(first, last):
    new = store.record_attempt(code, token, "ex1", {"i": i}, 0.5, True, 1.0, f"w{i}")
    print(f"w{i} {int(new)}", flush=True)
"""


def _writer(url, code, token, first, last):
    return subprocess.Popen([sys.executable, "-c", WRITER, ROOT, url, code, token, str(first), str(last)],
                            stdout=subprocess.PIPE, text=True)


def test_a_writer_process_killed_and_a_new_one_continuing_store_every_answer_once(tmp_path):
    """The server process is killed (SIGKILL) mid-stream; a new process resumes after the last answer it was told
    was stored, submitting the next one again: every answer is stored exactly once, nothing acknowledged is lost."""
    url = f"sqlite:///{tmp_path / 'workshop.sqlite3'}"
    room = Store(url).create_room("lesson")
    child = _writer(url, room.code, "-", 0, 100000)
    token = child.stdout.readline().strip()
    acked = [child.stdout.readline().split()[0] for _ in range(150)]
    child.send_signal(signal.SIGKILL)
    acked += [line.split()[0] for line in child.stdout.read().splitlines() if len(line.split()) == 2]
    child.wait(30)
    assert acked == [f"w{i}" for i in range(len(acked))] and len(acked) >= 150
    before = {r["attempt_id"] for r in Store(url, create=False).export_rows(room.code)}
    assert set(acked) <= before and len(before) <= len(acked) + 1  # at most the one between its commit and print
    child = _writer(url, room.code, token, len(acked), 400)  # the restarted server
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and out.split()[0] == token
    resumed = [line.split() for line in out.splitlines()[1:]]
    assert [a for a, _ in resumed] == [f"w{i}" for i in range(len(acked), 400)]
    assert [new for _, new in resumed] == ["0" if f"w{len(acked)}" in before else "1"] + ["1"] * (len(resumed) - 1)
    rows = Store(url).export_rows(room.code)
    assert sorted(r["attempt_id"] for r in rows) == sorted(f"w{i}" for i in range(400))


def instructor_during_joins(store, loops: int) -> int:
    """A thread keeps joining participants who each submit an attempt and a quiz sitting, while the instructor's
    table, answers, quiz and export run ``loops`` times; before each instructor SELECT of attempts or quiz
    sittings, the instructor waits until one more participant has joined and submitted (committed), so every
    view overlaps writes. Each view must show one moment: whole participants, in joining order, none half seen.
    Returns how many such waits the writer answered."""
    room = store.create_room("lesson")
    me, state, stop, done = threading.get_ident(), {"joined": 0, "waits": 0, "errors": []}, threading.Event(), \
        threading.Condition()

    def writer():
        try:
            n = 0
            while not stop.is_set():
                token = store.join(room.code, f"p{n:04d}")
                store.record_attempt(room.code, token, "ex1", {"n": n}, 0.5, True, 1.0, "a")
                store.record_quiz(room.code, token, "before", {"q": 0}, 1, 2, "q")
                n += 1
                with done:
                    state["joined"] = n
                    done.notify_all()
        except Exception as e:  # noqa: BLE001 (reported by the assertion below)
            state["errors"].append(f"{type(e).__name__}: {e}")
            with done:
                done.notify_all()

    def overlap(conn, cursor, statement, *_):
        if threading.get_ident() == me and (" attempts" in statement or " quiz" in statement):
            with done:
                target = state["joined"] + 1
                state["waits"] += done.wait_for(lambda: state["joined"] >= target or state["errors"], timeout=20)

    thread = threading.Thread(target=writer)
    thread.start()
    sa.event.listen(store.engine, "before_cursor_execute", overlap)
    try:
        for _ in range(loops):
            names = [r["nickname"] for r in store.table(room.code, room.key)]
            assert names == [f"p{n:04d}" for n in range(len(names))]
            exported = store.export_rows(room.code, room.key)
            tried = [r["nickname"] for r in exported if r["kind"] == "attempt"]
            sat = [r["nickname"] for r in exported if r["kind"] == "quiz"]
            assert tried == [f"p{n:04d}" for n in range(len(tried))] and sat == tried[:len(sat)]
            assert len(tried) - len(sat) <= 1  # the writer's attempt and quiz are two transactions
            answered = [r["nickname"] for r in store.answers(room.code, room.key, "ex1")]
            assert answered == [f"p{n:04d}" for n in range(len(answered))]
            assert store.quiz(room.code, room.key)["n_before"] >= len(sat)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", overlap)
        stop.set()
        thread.join(60)
    assert state["errors"] == []
    return state["waits"]


def test_the_instructors_views_show_one_moment_while_people_join_and_submit(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    assert instructor_during_joins(store, loops=6) == 6 * 5  # table 1, export 2, answers 1, quiz 1 per loop


def test_a_write_waits_for_the_lock_only_within_its_retry_time(tmp_path):
    """Another process holds the SQLite write lock for 2 s: each of three threads writing with retry_s 0.5 gives
    up in about 0.5 s (StoreUnavailable), instead of queueing behind the others' whole retry loops."""
    path = tmp_path / "w.sqlite3"
    store = Store(f"sqlite:///{path}", retry_s=0.5)
    room = store.create_room("lesson")
    ann = store.join(room.code, "Ann")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(2.0, other.rollback)
    release.start()
    results = []

    def submit(i):
        t0 = time.monotonic()
        try:
            store.record_attempt(room.code, ann, "ex1", {}, None, None, 1.0, f"a{i}")
            results.append(("stored", time.monotonic() - t0))
        except StoreUnavailable as e:
            results.append((str(e), time.monotonic() - t0))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    release.join()
    assert [r for r, _ in results if r == "stored"] == []
    assert all(s < 1.5 and "\n" not in r and r.startswith("The workshop database") for r, s in results), results
    assert store.record_attempt(room.code, ann, "ex1", {}, None, None, 1.0, "after")  # the lock is free again


def test_the_csv_export_neutralises_spreadsheet_formulas(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    room = store.create_room("lesson")
    for n, name in enumerate(['=HYPERLINK("http://x")', "@SUM(A1)", "Ann"]):
        who = store.join(room.code, name)
        store.record_attempt(room.code, who, "ex1", {"note": "=1+1"}, -0.25, False, 2.0, f"a{n}")
    rows = list(csv.DictReader(io.StringIO(csv_text(store.export_rows(room.code, room.key)))))
    assert [r["nickname"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "Ann"]
    assert {r["score"] for r in rows} == {"-0.25"} and json.loads(rows[0]["answer"]) == {"note": "=1+1"}
    row = {"room": "R", "nickname": "+1", "kind": "-x", "item": "\tx", "answer": "\rx", "score": -1, "correct": None}
    assert csv_text([row]).split("\r\n")[1] == "R,'+1,'-x,'\tx,\"'\rx\",-1,,,,,,"


def test_the_export_command_refuses_a_missing_sqlite_file_and_writes_safe_csv(tmp_path):
    def export(*args):
        return subprocess.run([sys.executable, "-m", "core", "lesson", "export", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    missing = tmp_path / "mistyped" / "path.sqlite3"
    out = export("--room", "ABCDEFGHJK", "--db", f"sqlite:///{missing}")
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"error: There is no workshop database at {missing}: the SQLite "
                                               "file does not exist; check the URL."]
    assert not (tmp_path / "mistyped").exists()  # nothing was created
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    store = Store(url)
    room = store.create_room("lesson")
    store.record_attempt(room.code, store.join(room.code, "@SUM(A1)"), "ex1", {}, 0.5, True, 2.0, "a")
    store.close()
    out = export("--room", room.code, "--db", url)
    assert out.returncode == 0 and out.stdout.splitlines()[1].startswith(f"{room.code},'@SUM(A1),attempt,ex1")
    out = export("--room", "ABCDEFGHJK", "--db", url)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: No room has this code; check the link you were given."]


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
