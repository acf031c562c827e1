"""The workshop store against a real PostgreSQL server that the test starts (tests/pg.py): 30 participants
submitting at once with the server restarted in the middle, the instructor's views while people join, a missing
database refused at once, a version-1 schema upgraded, keys and closed rooms. Without PostgreSQL's binaries the
tests fail in one line saying what to install (``make test`` installs Debian's ``postgresql`` where it runs as
root, as ``.ci/run`` does)."""
import time

import psycopg
import pytest

import pg
from core.store import AccessDenied, RoomClosed, Store, StoreError
from test_store import ANSWERS, PEOPLE, check_load, check_upgrade, classroom_load, instructor_during_joins, v1_schema


@pytest.fixture(scope="module")
def cluster():
    why = pg.missing()
    if why is not None:
        pytest.fail(why, pytrace=False)
    server = pg.Cluster()
    yield server
    server.remove()


def test_thirty_participants_at_once_with_a_server_restart_store_every_answer_once(cluster):
    store = Store(cluster.url)
    load = classroom_load(lambda: store, restart=cluster.restart)
    check_load(store, load, restarted=True)
    assert load["stored"] + load["repeats"] == PEOPLE * (ANSWERS + 2)
    retried = store.retried
    assert retried > 0  # the restart interrupted transactions, which were run again
    store.close()
    store = Store(cluster.url)  # a new process after the restart sees the same rows
    assert len(store.export_rows(load["room"].code)) == PEOPLE * ANSWERS
    print(f"30 x 20 answers (+60 repeats) on PostgreSQL with a restart: {load['seconds']:.2f} s, "
          f"{retried} transactions run again")
    load = classroom_load(lambda: store)
    check_load(store, load, restarted=False)
    print(f"30 x 20 answers (+60 repeats) on PostgreSQL: {load['seconds']:.2f} s")
    store.close()


def test_the_instructors_views_show_one_moment_while_people_join_and_submit_on_postgres(cluster):
    store = Store(cluster.url)
    assert instructor_during_joins(store, loops=6) == 6 * 5  # table 1, export 2, answers 1, quiz 1 per loop
    store.close()


def test_a_missing_database_or_role_fails_at_once_in_one_sentence(cluster):
    base = cluster.url.rsplit("/", 1)[0]
    for url, what in ((base + "/no_such_workshop", 'database "no_such_workshop" does not exist'),
                      (base.replace("postgres@", "nobody:secret@") + "/workshop", 'role "nobody" does not exist')):
        t0 = time.monotonic()
        with pytest.raises(StoreError) as e:
            Store(url)
        took = time.monotonic() - t0
        assert took < 2.0 and what in str(e.value) and "\n" not in str(e.value) and "secret" not in str(e.value)
        assert str(e.value).startswith("The workshop database postgresql+psycopg://") and str(e.value).endswith(".")
        print(f"{what}: refused in {took:.2f} s")


def test_a_version_1_schema_is_upgraded_keeping_every_row(cluster):
    dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE old_workshop")
    with psycopg.connect(dsn.replace("dbname=postgres", "dbname=old_workshop")) as conn:
        for statement in v1_schema("postgresql"):
            conn.execute(statement)
    check_upgrade(cluster.url.rsplit("/", 1)[0] + "/old_workshop")


def test_keys_codes_and_a_closed_room_on_postgres(cluster):
    import secrets

    store = Store(cluster.url)
    room, other = store.create_room("lesson"), store.create_room("lesson")
    assert not any(store.is_instructor(room.code, secrets.token_urlsafe(24)) for _ in range(200))
    assert store.is_instructor(room.code, room.key) and not store.is_instructor(room.code, other.key)
    ann = store.join(room.code, "<b>Ann</b>\x00")
    assert store.record_attempt(room.code, ann, "ex1", {"box": [0, 0, 1, 1]}, 0.4, None, 2.0, "a")
    assert store.own_progress(other.code, ann) == []
    with pytest.raises(AccessDenied):
        store.answers(room.code, other.key, "ex1")
    assert store.answers(room.code, room.key, "ex1")[0]["nickname"] == "<b>Ann</b>"
    store.close_room(room.code, room.key)
    with pytest.raises(RoomClosed):
        store.record_attempt(room.code, ann, "ex1", {}, 0.4, None, 2.0, "b")
    store.close()
