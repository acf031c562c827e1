"""The instructor's side of the workshop store (a base class of :class:`core.store.store.Store`): the room's key
checked, and the views of a room. Each view is one reading transaction (one snapshot on SQLite and, at REPEATABLE
READ, on PostgreSQL) whose rows carry their participant's nickname from the same SELECT, so a participant who joins
meanwhile is never half seen."""
from __future__ import annotations

import json

import sqlalchemy as sa

from . import engine as db
from .schema import attempts, participants, rooms
from .schema import quiz as sittings
from .secure import key_matches, normalise_code

PHASES = ("before", "after")
_DENIED = "This instructor link is not valid: the room or its key is wrong."
_NO_ROOM = "No room has this code; check the link you were given."


class AccessDenied(db.StoreError):
    """A wrong instructor key (or an unknown room) on an instructor's view."""


class InstructorViews:
    """The instructor's methods of :class:`~core.store.store.Store` (they use its ``_run``)."""

    def _key_hash(self, conn, code) -> str | None:
        code = normalise_code(code)
        if code is None:
            return None
        return conn.execute(sa.select(rooms.c.key_hash).where(rooms.c.code == code)).scalar()

    def is_instructor(self, code, key) -> bool:
        """Whether ``key`` is the instructor key of room ``code`` (constant-time; False for an unknown room)."""
        return key_matches(key, self._run(lambda c: self._key_hash(c, code)))

    def _instructor(self, conn, code, key) -> str:
        if not key_matches(key, self._key_hash(conn, code)):
            raise AccessDenied(_DENIED)
        return normalise_code(code)

    def participant_token(self, code, key, nickname) -> str | None:
        """The token of the room's participant called ``nickname`` (None for no such participant): their own link,
        which the instructor hands back to a participant who lost their page."""
        (rows,) = self._read_room(code, key, lambda c: sa.select(participants.c.id).where(
            participants.c.room_code == c, participants.c.nickname == str(nickname)))
        return rows[0].id if rows else None

    def _read_room(self, code, key, *selects):
        def read(conn):
            code_ = self._instructor(conn, code, key)
            return [conn.execute(s(code_)).all() for s in selects]
        return self._run(read)

    def table(self, code, key) -> list[dict]:
        """One row per participant (in joining order): ``{"nickname", <exercise id>: {"done", "score", "correct",
        "seconds", "attempts"}, ...}`` for every exercise attempted in the room; score, correct and seconds are the
        latest attempt's, ``done`` is true once an attempt was not wrong (correct true, or no right answer)."""
        (rows,) = self._read_room(code, key, lambda c: sa.select(
            participants.c.id, participants.c.nickname, attempts.c.exercise_id, attempts.c.score,
            attempts.c.correct, attempts.c.seconds, attempts.c.created, attempts.c.id.label("row"))
            .select_from(participants.outerjoin(attempts, attempts.c.participant_id == participants.c.id))
            .where(participants.c.room_code == c)
            .order_by(participants.c.joined, participants.c.id, attempts.c.created, attempts.c.id))
        names = dict((r.id, r.nickname) for r in rows)
        tried = [r for r in rows if r.exercise_id is not None]
        exercises = list(dict.fromkeys(r.exercise_id for r in sorted(tried, key=lambda r: (r.created, r.row))))
        cells = {(p, e): {"done": False, "score": None, "correct": None, "seconds": None, "attempts": 0}
                 for p in names for e in exercises}
        for r in tried:
            cell = cells[(r.id, r.exercise_id)]
            cell.update(score=r.score, correct=r.correct, seconds=r.seconds, attempts=cell["attempts"] + 1,
                        done=cell["done"] or r.correct is not False)
        return [{"nickname": name, **{e: cells[(p, e)] for e in exercises}} for p, name in names.items()]

    def answers(self, code, key, exercise_id) -> list[dict]:
        """Each participant's latest answer to ``exercise_id``: ``{"nickname", "answer", "score", "correct",
        "created"}`` in joining order."""
        (rows,) = self._read_room(code, key, lambda c: sa.select(
            participants.c.id, participants.c.nickname, attempts.c.answer, attempts.c.score, attempts.c.correct,
            attempts.c.created)
            .select_from(participants.join(attempts, attempts.c.participant_id == participants.c.id))
            .where(participants.c.room_code == c, attempts.c.exercise_id == str(exercise_id))
            .order_by(participants.c.joined, participants.c.id, attempts.c.created, attempts.c.id))
        latest = {r.id: r for r in rows}  # the last row of each participant is their latest attempt
        return [{"nickname": r.nickname, "answer": json.loads(r.answer), "score": r.score, "correct": r.correct,
                 "created": r.created} for r in latest.values()]

    def quiz(self, code, key) -> dict:
        """The quiz's shares right (0..1) over each participant's latest sitting per phase: ``before_mean``,
        ``after_mean`` (None without sittings), ``n_before``, ``n_after``, and over the participants with both,
        ``pairs`` and ``paired_gain`` (mean of after minus before; None without pairs)."""
        (rows,) = self._read_room(code, key, lambda c: sa.select(
            sittings.c.participant_id, sittings.c.phase, sittings.c.n_right, sittings.c.n_asked)
            .where(sittings.c.room_code == c).order_by(sittings.c.created, sittings.c.id))
        shares = {phase: {} for phase in PHASES}
        for r in rows:
            if r.n_asked > 0:
                shares[r.phase][r.participant_id] = r.n_right / r.n_asked
        before, after = shares["before"], shares["after"]
        gains = [after[p] - before[p] for p in after if p in before]

        def mean(values):
            return sum(values) / len(values) if values else None
        return {"before_mean": mean(list(before.values())), "after_mean": mean(list(after.values())),
                "paired_gain": mean(gains), "pairs": len(gains), "n_before": len(before), "n_after": len(after)}

    def export_rows(self, code, key=None) -> list[dict]:
        """Every attempt and quiz sitting of the room, oldest first, as flat rows for CSV: ``{"room", "nickname",
        "kind" ("attempt"|"quiz"), "item" (exercise id or phase), "answer" (JSON text), "score", "correct",
        "seconds", "right", "asked", "created", "attempt_id"}``. ``key`` None skips the key check: only for the
        server's operator (the command line). Raises AccessDenied for a wrong key or unknown room."""
        def read(conn):
            code_ = normalise_code(code)
            if key is not None:
                code_ = self._instructor(conn, code, key)
            elif code_ is None or conn.execute(sa.select(rooms.c.code).where(rooms.c.code == code_)).first() is None:
                raise ValueError(_NO_ROOM)
            tried = conn.execute(sa.select(attempts, participants.c.nickname)
                                 .select_from(attempts.join(participants))
                                 .where(attempts.c.room_code == code_)).all()
            sat = conn.execute(sa.select(sittings, participants.c.nickname)
                               .select_from(sittings.join(participants))
                               .where(sittings.c.room_code == code_)).all()
            return code_, tried, sat
        code_, tried, sat = self._run(read)
        rows = [{"room": code_, "nickname": r.nickname, "kind": "attempt", "item": r.exercise_id,
                 "answer": r.answer, "score": r.score, "correct": r.correct, "seconds": r.seconds, "right": None,
                 "asked": None, "created": r.created, "attempt_id": r.attempt_id} for r in tried]
        rows += [{"room": code_, "nickname": r.nickname, "kind": "quiz", "item": r.phase,
                  "answer": r.answers, "score": r.n_right / r.n_asked if r.n_asked else None, "correct": None,
                  "seconds": None, "right": r.n_right, "asked": r.n_asked, "created": r.created,
                  "attempt_id": r.attempt_id} for r in sat]
        return sorted(rows, key=lambda r: (r["created"], r["kind"]))
