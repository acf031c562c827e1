"""The workshop database's tables (SQLAlchemy Core), its schema version, and the upgrade from older versions.

Version 2 (current):

- ``schema_version(version)``: one row, the version of the tables below.
- ``rooms(code, lesson_id, key_hash, created, closed)``: a room; only the SHA-256 of its instructor key.
- ``participants(id, room_code, nickname, joined)``: the opaque token, the room and the nickname (unique in the room).
- ``attempts(id, attempt_id, room_code, participant_id, exercise_id, answer, score, correct, seconds, created)``:
  one submitted answer (``answer`` is JSON text: a drawn box, a layer name, an option...); ``attempt_id`` is the
  page's id of the submit, unique per participant, so a retried submit is stored once.
- ``quiz(id, attempt_id, room_code, participant_id, phase, answers, n_right, n_asked, created)``: one sitting of the
  quiz (``phase`` "before" or "after", ``answers`` JSON text), unique per participant and ``attempt_id``.

Version 1 had neither ``attempt_id`` nor ``attempts.answer``: :func:`ensure` adds them (old rows get
``attempt_id`` "v1-<id>" and the answer ``{}``) and the unique indexes, in one transaction, keeping every row.
Times are seconds since the epoch (UTC).
"""
from __future__ import annotations

import sqlalchemy as sa

from .engine import StoreError

SCHEMA_VERSION = 2

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

rooms = sa.Table(
    "rooms", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("lesson_id", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False, default=False),
)

participants = sa.Table(
    "participants", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("room_code", sa.String(16), sa.ForeignKey("rooms.code"), nullable=False),
    sa.Column("nickname", sa.String(40), nullable=False),
    sa.Column("joined", sa.Float, nullable=False),
    sa.UniqueConstraint("room_code", "nickname", name="uq_participants_nickname"),
)

attempts = sa.Table(
    "attempts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", sa.String(64), nullable=False),
    sa.Column("room_code", sa.String(16), sa.ForeignKey("rooms.code"), nullable=False),
    sa.Column("participant_id", sa.String(32), sa.ForeignKey("participants.id"), nullable=False),
    sa.Column("exercise_id", sa.String(100), nullable=False),
    sa.Column("answer", sa.Text, nullable=False, default="{}"),
    sa.Column("score", sa.Float),
    sa.Column("correct", sa.Boolean),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("uq_attempts_attempt", "participant_id", "attempt_id", unique=True),
    sa.Index("ix_attempts_room_exercise", "room_code", "exercise_id"),
)

quiz = sa.Table(
    "quiz", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", sa.String(64), nullable=False),
    sa.Column("room_code", sa.String(16), sa.ForeignKey("rooms.code"), nullable=False),
    sa.Column("participant_id", sa.String(32), sa.ForeignKey("participants.id"), nullable=False),
    sa.Column("phase", sa.String(10), nullable=False),
    sa.Column("answers", sa.Text, nullable=False),
    sa.Column("n_right", sa.Integer, nullable=False),
    sa.Column("n_asked", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("uq_quiz_attempt", "participant_id", "attempt_id", unique=True),
    sa.Index("ix_quiz_room", "room_code"),
)


class SchemaError(StoreError):
    """The database holds tables this studio cannot use (one sentence)."""


def _upgrade_1_to_2(conn) -> None:
    """Version 1 → 2: the submit's ``attempt_id`` on attempts and quiz (unique per participant) and the answer."""
    for table, index in (("attempts", "uq_attempts_attempt"), ("quiz", "uq_quiz_attempt")):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN attempt_id VARCHAR(64)")
        conn.exec_driver_sql(f"UPDATE {table} SET attempt_id = 'v1-' || CAST(id AS VARCHAR(20))")
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX {index} ON {table} (participant_id, attempt_id)")
    conn.exec_driver_sql("ALTER TABLE attempts ADD COLUMN answer TEXT NOT NULL DEFAULT '{}'")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_attempts_room_exercise ON attempts (room_code, exercise_id)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_quiz_room ON quiz (room_code)")


UPGRADES = {1: _upgrade_1_to_2}  # from version -> the step to the next version


def ensure(conn) -> int:
    """Create the tables in an empty database or upgrade older ones to :data:`SCHEMA_VERSION`, inside the caller's
    transaction (which must hold the database's write lock). Returns the version found (0 for an empty database).

    Raises:
        SchemaError: tables without a version, or a version newer than this studio's.
    """
    names = set(sa.inspect(conn).get_table_names())
    if "schema_version" not in names:
        if names & {"rooms", "participants", "attempts", "quiz"}:
            raise SchemaError("The workshop database has studio tables but no schema_version table; "
                              "point GRADCAM_STUDIO_DB at a fresh database.")
        metadata.create_all(conn)
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        return 0
    found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    if found is None or found < 1:
        raise SchemaError("The workshop database's schema_version table is empty; "
                          "point GRADCAM_STUDIO_DB at a fresh database.")
    if found > SCHEMA_VERSION:
        raise SchemaError(f"The workshop database has schema version {found}, newer than this studio's "
                          f"{SCHEMA_VERSION}; upgrade the studio or use another database.")
    version = found
    while version < SCHEMA_VERSION:
        UPGRADES[version](conn)
        version += 1
    if found != SCHEMA_VERSION:
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    return found
