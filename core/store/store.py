"""The workshop store: rooms, participants, their attempts and quiz sittings; the instructor's views of a room come
from :class:`core.store.views.InstructorViews`.

One :class:`Store` per process, shared by every session's thread. Every method is one transaction (run again
while the database is busy or restarting, see :mod:`core.store.engine`); a submit carries the page's
``attempt_id``, so submitting it again stores nothing new. Instructor methods take the room's key and raise
:class:`AccessDenied` for a wrong key or an unknown room alike, so a code never tells whether a room exists.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from . import engine as db
from .schema import SCHEMA_VERSION, attempts, ensure, participants, rooms
from .schema import quiz as sittings
from .secure import clean_nickname, hash_key, new_code, new_key, new_participant, normalise_code
from .views import _NO_ROOM, PHASES, InstructorViews

ANSWER_MAX_BYTES = 64 * 1024


class RoomClosed(db.StoreError):
    """The instructor has closed the room: nothing more is recorded."""


@dataclass(frozen=True)
class Room:
    """A new room: the participants' code and the instructor's key (shown once; only its hash is stored)."""
    code: str
    key: str


_CLOSED = "This room is closed: the instructor has ended the session, so answers are no longer recorded."
_TAKEN = ("This nickname is already taken in this room: choose another, or, if it is yours and you lost your page, "
          "ask your instructor for your own link.")
_NOT_JOINED = "You are not a participant of this room; join it again with your nickname."


def _text(value, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"The {field} must be text of 1 to {limit} characters.")
    return value


def _number(value, field: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"The {field} must be a finite number.")
    return number


def _plain(value):
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError


def _json(value, field: str) -> str:
    try:
        text = json.dumps(value, default=_plain, allow_nan=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        raise ValueError(f"The {field} must be JSON data (numbers, text, lists, dicts).") from None
    if len(text.encode()) > ANSWER_MAX_BYTES:
        raise ValueError(f"The {field} is {len(text.encode()) // 1024} KB of JSON; at most "
                         f"{ANSWER_MAX_BYTES // 1024} KB is stored.")
    return text


class Store(InstructorViews):
    """The workshop database at ``url`` (default :func:`~core.store.engine.default_url`): creates or upgrades the
    schema on opening; thread-safe.

    Args:
        url: an SQLAlchemy URL (``sqlite:///file``, ``postgresql+psycopg://user@host:port/db``...).
        retry_s: how long a transaction is tried again while the database is locked or restarting.
        create: False refuses a SQLite file that does not exist (StoreError) instead of creating it.

    Attributes:
        retried: how many times a transaction was run again after a busy, lost or restarting database.
    """

    def __init__(self, url: str | None = None, retry_s: float = 20.0, create: bool = True):
        self.retry_s = retry_s
        self.engine = db.make_engine(url or db.default_url(), busy_s=retry_s, create=create)
        self.url = self.engine.url
        # SQLite has one writer at a time: this process's threads queue here instead of in SQLite's busy handler,
        # which sleeps up to 100 ms between tries (other processes still wait through the busy timeout); the
        # wait is taken per try, within retry_s
        self._writing = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self._counting = threading.Lock()
        self.retried = 0
        self.upgraded_from = self._run(self._ensure, write=True)

    def __repr__(self) -> str:
        return f"Store({db.shown(self.url)!r})"

    def close(self) -> None:
        """Close every pooled connection (the store is unusable afterwards)."""
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _ensure(conn) -> int:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(2602602602)")  # one process creates or upgrades
        return ensure(conn)

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def _count_retry(self) -> None:
        with self._counting:
            self.retried += 1

    def _run(self, fn, write: bool = False):
        return db.run(self.engine, fn, write, self.retry_s, lock=self._writing if write else None,
                      on_retry=self._count_retry)

    # rooms ---------------------------------------------------------------------------------------------------
    def create_room(self, lesson_id: str) -> Room:
        """A new open room for ``lesson_id``; its key is returned here only (the store keeps its SHA-256)."""
        lesson_id = _text(lesson_id, "lesson id", 200)
        key = new_key()
        for _ in range(8):
            code = new_code()

            def write(conn, code=code):
                if conn.execute(sa.select(rooms.c.code).where(rooms.c.code == code)).first() is not None:
                    return False
                conn.execute(rooms.insert().values(code=code, lesson_id=lesson_id, key_hash=hash_key(key),
                                                   created=time.time(), closed=False))
                return True
            try:
                if self._run(write, write=True):
                    return Room(code, key)
            except sa.exc.IntegrityError:
                continue
        raise db.StoreError("No free room code was found; try again.")

    def room(self, code) -> dict | None:
        """``{"code", "lesson_id", "created", "closed"}`` of the room, or None for a code of no room."""
        code = normalise_code(code)
        if code is None:
            return None
        row = self._run(lambda c: c.execute(sa.select(rooms.c.code, rooms.c.lesson_id, rooms.c.created,
                                                      rooms.c.closed).where(rooms.c.code == code)).first())
        return None if row is None else {"code": row.code, "lesson_id": row.lesson_id, "created": row.created,
                                         "closed": bool(row.closed)}

    def close_room(self, code, key) -> None:
        """Close the room: joins and submits then raise :class:`RoomClosed`; what is stored stays readable."""
        def write(conn):
            code_ = self._instructor(conn, code, key)
            conn.execute(rooms.update().where(rooms.c.code == code_).values(closed=True))
        self._run(write, write=True)

    # participants ----------------------------------------------------------------------------------------------
    @staticmethod
    def _open_room(conn, code) -> str:
        code_ = normalise_code(code)
        row = None if code_ is None else conn.execute(
            sa.select(rooms.c.closed).where(rooms.c.code == code_).with_for_update(read=True)).first()
        if row is None:
            raise ValueError(_NO_ROOM)
        if row.closed:
            raise RoomClosed(_CLOSED)
        return code_

    def _participant(self, conn, code, participant) -> str:
        code_ = self._open_room(conn, code)
        found = isinstance(participant, str) and len(participant) <= 64 and conn.execute(
            sa.select(participants.c.id).where(participants.c.id == participant,
                                               participants.c.room_code == code_)).first()
        if not found:
            raise ValueError(_NOT_JOINED)
        return code_

    def join(self, code, nickname) -> str:
        """Join room ``code`` as ``nickname`` (cleaned by :func:`clean_nickname`, unique in the room): the
        participant's token, which the page keeps. Raises RoomClosed, or ValueError (one sentence) for an unknown
        room, an empty nickname, or one already taken in the room."""
        name, _ = clean_nickname(nickname)
        token = new_participant()

        def write(conn):
            code_ = self._open_room(conn, code)
            taken = conn.execute(sa.select(participants.c.id).where(participants.c.room_code == code_,
                                                                    participants.c.nickname == name)).scalar()
            if taken is not None and taken != token:
                raise ValueError(_TAKEN)
            if taken is None:
                conn.execute(participants.insert().values(id=token, room_code=code_, nickname=name,
                                                          joined=time.time()))
            return token
        for _ in range(3):
            try:
                return self._run(write, write=True)
            except sa.exc.IntegrityError:  # the same nickname joined at the same moment: the next run says so
                continue
        raise ValueError(_TAKEN)

    def record_attempt(self, code, participant, exercise_id, answer, score, correct, seconds, attempt_id) -> bool:
        """Store one submitted answer; True when stored now, False when this ``attempt_id`` was stored before.
        Raises RoomClosed, or ValueError (one sentence) for an unknown room, participant or a bad value."""
        values = {"attempt_id": _text(attempt_id, "attempt id", 64),
                  "exercise_id": _text(exercise_id, "exercise id", 100),
                  "answer": _json(answer, "answer"), "score": _number(score, "score", optional=True),
                  "correct": None if correct is None else bool(correct),
                  "seconds": _number(seconds, "time taken"), "created": time.time()}

        def write(conn):
            code_ = self._participant(conn, code, participant)
            return db.insert_once(conn, attempts, {**values, "room_code": code_, "participant_id": participant},
                                  ("participant_id", "attempt_id"))
        return self._run(write, write=True)

    def record_quiz(self, code, participant, phase, answers, right, asked, attempt_id) -> bool:
        """Store one sitting of the quiz (``phase`` "before" or "after"); True when stored now, False for a
        repeated ``attempt_id``. Raises RoomClosed or ValueError like :meth:`record_attempt`."""
        if phase not in PHASES:
            raise ValueError('The quiz phase must be "before" or "after".')
        right_, asked_ = _number(right, "number right"), _number(asked, "number asked")
        if not (right_ == int(right_) and asked_ == int(asked_) and 0 <= right_ <= asked_):
            raise ValueError("The quiz result must be whole numbers with 0 <= right <= asked.")
        values = {"attempt_id": _text(attempt_id, "attempt id", 64), "phase": phase,
                  "answers": _json(answers, "quiz answers"), "n_right": int(right_), "n_asked": int(asked_),
                  "created": time.time()}

        def write(conn):
            code_ = self._participant(conn, code, participant)
            return db.insert_once(conn, sittings, {**values, "room_code": code_, "participant_id": participant},
                                  ("participant_id", "attempt_id"))
        return self._run(write, write=True)

    def own_progress(self, code, participant) -> list[dict]:
        """This participant's attempts in this room, oldest first (nothing for a token of another room):
        ``{"exercise_id", "answer", "score", "correct", "seconds", "created", "attempt_id"}``."""
        code_ = normalise_code(code)
        if code_ is None or not isinstance(participant, str) or len(participant) > 64:
            return []
        rows = self._run(lambda c: c.execute(
            sa.select(attempts).where(attempts.c.room_code == code_, attempts.c.participant_id == participant)
            .order_by(attempts.c.created, attempts.c.id)).all())
        return [{"exercise_id": r.exercise_id, "answer": json.loads(r.answer), "score": r.score,
                 "correct": r.correct, "seconds": r.seconds, "created": r.created, "attempt_id": r.attempt_id}
                for r in rows]

    def own_quiz(self, code, participant) -> list[dict]:
        """This participant's quiz sittings in this room, oldest first (nothing for a token of another room):
        ``{"phase", "answers", "right", "asked", "created", "attempt_id"}``."""
        code_ = normalise_code(code)
        if code_ is None or not isinstance(participant, str) or len(participant) > 64:
            return []
        rows = self._run(lambda c: c.execute(
            sa.select(sittings).where(sittings.c.room_code == code_, sittings.c.participant_id == participant)
            .order_by(sittings.c.created, sittings.c.id)).all())
        return [{"phase": r.phase, "answers": json.loads(r.answers), "right": r.n_right, "asked": r.n_asked,
                 "created": r.created, "attempt_id": r.attempt_id} for r in rows]

    def nickname(self, code, participant) -> str | None:
        """The nickname of the participant with this token in room ``code`` (None for another room's or no token):
        a page that kept the token finds who it is again."""
        code_ = normalise_code(code)
        if code_ is None or not isinstance(participant, str) or len(participant) > 64:
            return None
        return self._run(lambda c: c.execute(sa.select(participants.c.nickname).where(
            participants.c.id == participant, participants.c.room_code == code_)).scalar())

    def best_score(self, code, exercise_id) -> float | None:
        """The lowest score among the room's right attempts at ``exercise_id`` (for flip_mask: the smallest share
        of the photo that changed the model's mind), None without one; names nothing, so any participant may ask."""
        code_ = normalise_code(code)
        if code_ is None or not isinstance(exercise_id, str):
            return None
        return self._run(lambda c: c.execute(sa.select(sa.func.min(attempts.c.score)).where(
            attempts.c.room_code == code_, attempts.c.exercise_id == exercise_id,
            attempts.c.correct.is_(True))).scalar())
