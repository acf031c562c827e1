"""The Lesson page's steps: the lesson picker, the quiz (before and after), one exercise (its widgets, the check
of a submitted answer, the feedback), the navigation and the downloads.

Everything a learner did is in ``st.session_state`` (:mod:`ui.lesson_state`); in a workshop room (``member``: the
room's code, the participant's token and nickname) every handled submit is also written to the shared store with
the submit's attempt id (:mod:`ui.lesson_exercise`), so a repeated run stores it once.
"""
from __future__ import annotations

import streamlit as st

from core import lessons, models
from core.cam import occlusion
from core.imaging import render

from . import lesson_exercise as lx
from . import lesson_state as ls
from .pictures import show
from .resources import get_engine, trained_models, wait_for_start

PHASES = {"before": "Quiz before the exercises", "after": "Quiz after the exercises"}


def _rk(run: dict) -> str:
    return ls.run_key(run["lesson"], run.get("room"))


def readable(found: dict, problems: list[str]) -> bool:
    """One line per problem of the lesson files that could not be read (in an expander titled with how many files);
    False, with a sentence, when none could."""
    if problems:
        files = len({line.split(": ", 1)[0] for line in problems})  # each line starts with its file's path
        title = f"{files} lesson file(s) could not be read"
        with st.expander(title + (f" ({len(problems)} problems)" if len(problems) > files else "")):
            for line in problems:
                st.text(line)
    if not found:
        st.error("No lesson could be read.")
    return bool(found)


def pick(found: dict, problems: list[str]) -> lessons.Lesson | None:
    """The lesson chooser (solo mode), with one line per lesson file that could not be read."""
    if not readable(found, problems):
        return None
    ids = list(found)
    chosen = st.selectbox("Lesson", ids, key="lesson_pick", format_func=ls.lesson_title(found))
    return found[chosen]


def header(lesson: lessons.Lesson, run: dict):
    """The lesson's intro (on the first step) and the place of the progress bar (filled by :func:`progress_bar`
    once the step has handled a submit)."""
    if run["step"] == 0 and lesson.intro:
        st.markdown(lesson.intro)
    return st.empty()


def progress_bar(slot, lesson: lessons.Lesson, run: dict) -> None:
    """A progress bar over the lesson's exercises (the optional ones count only once done)."""
    needed = [e for e in lesson.exercises if not e.optional or e.id in run["done"]]
    done = sum(1 for e in needed if e.id in run["done"])
    slot.progress(done / max(1, len(needed)), text=f"{done} of {len(needed)} exercises done")


# ---------------------------------------------------------------------------------------------- the quiz

def quiz(lesson: lessons.Lesson, run: dict, phase: str, member: dict | None) -> None:
    """The concept quiz of one phase: a radio per question, Submit, then the score (and, after, the gain). The
    quiz before can be skipped (no gain then) and is closed once an exercise is done; the quiz after opens once
    every exercise that is not optional is done, or when the learner ends the lesson."""
    rk = _rk(run)
    st.header(PHASES[phase])
    _handle_quiz(lesson, run, phase, member)
    sat = run["quiz"].get(phase)
    if phase == "after" and sat is None and not ls.after_open(lesson, run):
        left = ls.left_to_do(lesson, run)
        st.caption(f"The quiz after comes once you have done every exercise: {len(left)} left "
                   f"({', '.join(e.title for e in left[:3])}{'…' if len(left) > 3 else ''}). "
                   "Go back to them, or end the lesson now.")
        st.button("End the lesson now", key=lx.key(lesson.id, "quiz_after", "end"), on_click=ls.end_lesson,
                  args=(rk,))
        return
    closed = phase == "before" and sat is None and not ls.before_open(run)
    if closed:
        st.caption("You skipped the quiz before and have started the exercises: it can no longer be sat, so no gain "
                   "is recorded.")
    elif sat is None:
        st.caption("The same questions come back after the last exercise; your gain is the difference."
                   if phase == "before" else "The questions you answered before the first exercise.")
    if sat is None and not closed:  # the answers go to the server once, with Submit (a form), not per click
        with st.form(lx.key(lesson.id, f"quiz_{phase}", "form"), border=False):
            _questions(lesson, phase)
            st.form_submit_button("Submit the quiz", key=lx.key(lesson.id, f"quiz_{phase}", "submit"),
                                  type="primary", on_click=lx.submit_quiz,
                                  args=(rk, lesson.id, phase, tuple(q.id for q in lesson.quiz)))
        if lx.missing(rk, f"quiz:{phase}"):
            st.warning(lx.QUIZ_MISSING)
        if phase == "before":
            st.button("Skip the quiz", key=lx.key(lesson.id, "quiz_before", "skip"), on_click=ls.skip_before,
                      args=(rk,), help="Straight to the first exercise; without the quiz before, no gain is shown.")
        return
    _questions(lesson, phase, {} if sat is None else sat["answers"])
    if sat is None:
        return
    st.success(f"{sat['right']} of {sat['asked']} right.")
    if phase == "after":
        g = ls.gain(run)
        before = run["quiz"].get("before")
        st.metric("Your gain", "—" if g is None else f"{g:+.0%}",
                  help="No quiz before was sat, so there is no gain." if before is None else
                  f"Before: {before['right']} of {before['asked']} right; after: {sat['right']} of {sat['asked']}.")
        for q in lesson.quiz:
            mark = "✓" if sat["answers"].get(q.id) == q.answer else "✗"
            st.markdown(f"{mark} **{q.text}** — {q.options[q.answer]}. {q.explanation}")


def _questions(lesson: lessons.Lesson, phase: str, answers: dict | None = None) -> None:
    """The quiz's radios: to answer (inside the form), or showing the ``answers`` sent (disabled)."""
    for q in lesson.quiz:
        shown = None if answers is None else answers.get(q.id)
        st.radio(q.text, range(len(q.options)), index=shown, format_func=q.options.__getitem__,
                 key=lx.key(lesson.id, f"quiz_{phase}" if answers is None else f"quiz_{phase}_sent", q.id),
                 disabled=answers is not None)


def _handle_quiz(lesson, run, phase, member) -> None:
    item, rk = f"quiz:{phase}", _rk(run)
    pending = st.session_state.get(ls.PENDING, {}).get((rk, item))
    if pending is None:
        return
    answers = pending["raw"]
    right, asked = lessons.quiz_score(lesson.quiz, answers)
    if member is not None and not _record(member, "record_quiz", phase, answers, right, asked,
                                          pending["attempt_id"]):
        st.session_state[ls.PENDING].pop((rk, item), None)
        return
    run["quiz"][phase] = {"answers": answers, "right": right, "asked": asked}
    st.session_state[ls.PENDING].pop((rk, item), None)


# ---------------------------------------------------------------------------------------------- an exercise

def engine_for(exercise: lessons.Exercise, notice=None):
    """The shared engine for the exercise's model, after the process's start-up work (followed on ``notice``, the
    page's start-up bar); None with one line where it cannot be used here."""
    if exercise.model not in models.REGISTRY:
        return None
    wait_for_start(notice)
    try:
        return get_engine(exercise.model)
    except models.WeightsUnavailable as exc:
        st.error(str(exc))
        return None


def exercise(lesson: lessons.Lesson, index: int, run: dict, member: dict | None, notice=None) -> None:
    """One exercise: instructions, hints, the answer widgets, Submit, and once handled the feedback."""
    ex = lesson.exercises[index]
    st.header(f"Exercise {index + 1} of {len(lesson.exercises)} · {ex.title}")
    st.markdown(ex.instructions)
    if ex.hints:
        with st.expander("Hints"):
            st.markdown("\n".join(f"- {h}" for h in ex.hints))
    engine = engine_for(ex, notice)
    if engine is None:
        st.info(f"This exercise needs the model `{ex.model}`, which this session does not have"
                + (": it is optional, go on to the next." if ex.optional else "."))
        return
    if ex.params.get("needs") == "trained" and not trained_models():
        st.info("This exercise needs a model you trained on the Train page in this session"
                + (": it is optional, go on to the next." if ex.optional else "."))
        return
    rgb = ls.exercise_photo(lesson, ex).rgb
    base = render.display_base(rgb, 640)
    ls.started(run, ex.id)
    try:
        _handle(lesson, ex, run, member, engine, rgb)
    except (ValueError, occlusion.MaskError) as exc:  # an answer of the wrong form (a box of no width…): one line
        st.error(str(exc)[:1].upper() + str(exc)[1:])
    done = run["done"].get(ex.id)
    kind = ex.kind
    if kind == "predict_box":
        if done is None:
            lx.predict_box(lesson.id, ex, base, False)
    elif kind == "earliest_layer":
        cls = ex.class_index if ex.class_index is not None else engine.run(rgb).class_index
        lx.earliest_layer(lesson.id, ex, engine, rgb, base, cls, lessons.photo_box(lesson, ex))
    elif kind == "flip_mask":
        lx.flip_mask(lesson.id, ex, rgb, base, done is not None)
    elif kind == "choice":
        lx.choice(lesson.id, ex, done is not None)
    else:
        lx.value(lesson.id, ex, done is not None)
    if done is None:
        st.button("Submit", key=lx.key(lesson.id, ex.id, "submit"), type="primary",
                  on_click=lx.submit_exercise, args=(_rk(run), lesson.id, ex))
        if lx.missing(_rk(run), ex.id):
            st.warning(lx.MISSING_TEXT[ex.kind])
        return
    if "feedback" not in done:
        _refeed(ex, done, engine, rgb)
    feedback(lesson, ex, run, member, engine, rgb, base)


def _handle(lesson, ex, run, member, engine, rgb) -> None:
    """Check a pending submit of this exercise: the computed side (with a bar), the check, the store, the session."""
    item, rk = ex.id, _rk(run)
    pending = st.session_state.get(ls.PENDING, {}).get((rk, item))
    if pending is None:
        return
    try:
        bar = st.progress(0.0, text="Checking your answer…")
        exp = lessons.expected(ex, engine, rgb, progress=ls.bar_progress(bar, "Checking your answer…"))
        answer = lx.to_answer(ex, pending["raw"], rgb.shape[:2])
        outcome = lessons.check(ex, answer, exp, engine=engine, rgb=rgb)
        bar.empty()
    except Exception:
        st.session_state[ls.PENDING].pop((rk, item), None)  # a bad answer is not retried forever
        raise
    raw = dict(pending["raw"])
    if ex.kind == "flip_mask":
        raw["share"] = float(answer.mean())
    score = None if outcome.score is None else float(outcome.score)
    correct = None if outcome.correct is None else bool(outcome.correct)
    if member is not None and not _record(member, "record_attempt", ex.id, raw, score, correct,
                                          float(pending["seconds"]), pending["attempt_id"]):
        st.session_state[ls.PENDING].pop((rk, item), None)
        return
    if ex.kind == "flip_mask" and correct and score is not None:
        ls.keep_best(run, ex.id, score)
    run["done"][ex.id] = {"kind": ex.kind, "answer": raw, "score": score, "correct": correct,
                          "seconds": float(pending["seconds"]), "feedback": outcome.feedback,
                          "detail": ls.plain(outcome.detail), "attempt_id": pending["attempt_id"]}
    st.session_state[ls.PENDING].pop((rk, item), None)


def _refeed(ex, done: dict, engine, rgb) -> None:
    """The feedback of an answer restored from the store: its check run again (the expected side is cached)."""
    try:
        answer = lx.to_answer(ex, done["answer"], rgb.shape[:2])
        outcome = lessons.check(ex, answer, lessons.expected(ex, engine, rgb), engine=engine, rgb=rgb)
        done["feedback"], done["detail"] = outcome.feedback, ls.plain(outcome.detail)
    except (ValueError, KeyError, TypeError, occlusion.MaskError):
        done["feedback"], done["detail"] = "Your answer from before.", {}


def _record(member: dict, what: str, *args) -> bool:
    """Write to the room's store; False (with one sentence) where the room closed meanwhile."""
    from core.store import RoomClosed

    store = ls.shared_store()
    try:
        getattr(store, what)(member["code"], member["participant"], *args)
    except RoomClosed:
        st.error("This room is closed: your answer was not recorded.")
        return False
    except ValueError as exc:  # the store's one sentence (no longer a participant, …)
        st.error(str(exc))
        return False
    return True


def feedback(lesson, ex, run: dict, member, engine, rgb, base) -> None:
    """What the learner sees once their answer was checked."""
    done = run["done"][ex.id]
    if ex.kind == "predict_box":
        exp = lessons.expected(ex, engine, rgb)
        c1, c2 = st.columns(2)
        show(c1, lx.draw_boxes(base, [done["answer"]["box"]]), caption="Your box")
        if exp.map is not None:
            show(c2, lx.draw_boxes(render.overlay(base, exp.map, 0.5), [done["answer"]["box"]]),
                 caption=f"The model's map for {exp.class_name}, with your box")
    if ex.kind == "flip_mask":
        _flip_result(ex, done, member, run, base)
    shown = {True: st.success, False: st.warning, None: st.info}[done["correct"]]
    shown(done["feedback"])
    if ex.explanation:
        st.markdown(ex.explanation)
    if ex.kind != "predict_box":
        st.button("Try again", key=lx.key(lesson.id, ex.id, "again"), on_click=lx.again, args=(_rk(run), ex.id))


def _flip_result(ex, done: dict, member, run: dict, base) -> None:
    raw = done["answer"]
    masked = occlusion.apply_fill(base, lx.rects_mask(raw["rects"], *base.shape[:2]), raw["fill"])
    detail = done.get("detail", {})
    top = detail.get("after_name")
    show(st, masked, caption=f"Masked · {raw['share']:.1%} of the photo" + (f" · now top-1: {top}" if top else ""),
         width="content")
    best, own = ls.best_share(ex, member, run)
    if best is not None:
        st.caption(f"Your best share so far: {best:.1%}." if own else f"The best share in the room so far: {best:.1%}.")


# ---------------------------------------------------------------------------------------------- around the steps

def navigation(lesson: lessons.Lesson, run: dict) -> None:
    """Back and Next (Next leaves the quiz before only once it was sat or skipped)."""
    step, last, rk = run["step"], ls.steps(lesson) - 1, _rk(run)
    c1, c2, _ = st.columns([1, 1, 4])
    c1.button("Back", key=f"lesson_back_{lesson.id}", disabled=step == 0, on_click=ls.go, args=(rk, step - 1))
    held = step >= last or (step == 0 and not ls.may_leave_start(run))
    c2.button("Next", key=f"lesson_next_{lesson.id}", disabled=held, on_click=ls.go, args=(rk, step + 1),
              type="primary")


def downloads(lesson: lessons.Lesson, run: dict) -> None:
    """The learner's progress as JSON and as CSV."""
    c1, c2 = st.columns(2)
    c1.download_button("Download progress (JSON)", ls.to_json(run), file_name=f"{lesson.id}-progress.json",
                       mime="application/json", key=f"lesson_json_{lesson.id}")
    c2.download_button("Download progress (CSV)", ls.to_csv(run), file_name=f"{lesson.id}-progress.csv",
                       mime="text/csv", key=f"lesson_csv_{lesson.id}")
