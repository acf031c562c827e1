"""Memory probe for the soak: where the server's memory is, every ``MEMPROBE_EVERY_S`` seconds, as JSON lines.

Loaded by Python at start-up when ``tools/memprobe`` is on ``PYTHONPATH`` (``tools/soak.py --probe`` does that for
the server it starts) and ``MEMPROBE_OUT`` names the output file; otherwise it does nothing. Each line: RSS; the C
heap as glibc's ``mallinfo2`` sees it (bytes in use, free inside the heap, mapped blocks); NumPy arrays that own
their data and the largest shapes; strings over 20 kB and what holds them; the engines' result caches; each
session's state (arrays, bytes, strings, pictures); Streamlit's own stats; how many script runners, sessions,
pass results are alive and what holds them. Optional, by environment variable:

- ``MEMPROBE_TRACE=1``: ``tracemalloc`` totals and the 15 source lines whose allocations grew most (slow);
- ``MEMPROBE_HOLDERS=1``: what holds the page runs' namespaces and the finished script runners (three levels);
- ``MEMPROBE_COLLECT=1``: a full collection each tick, its time and the bytes in use after it;
- ``MEMPROBE_MEMRAY=FILE``: memray's record of every allocation still alive when ``FILE.stop`` appears (or at
  exit), with native stacks (``memray`` must be importable; ``tools/soak.py`` creates ``FILE.stop`` at the end).
"""
import ctypes
import gc
import json
import os
import sys
import threading
import time

_OUT = os.environ.get("MEMPROBE_OUT")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo() -> dict:
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    mb = 2 ** 20
    return {"heap_mb": round(m.arena / mb, 1), "mapped_mb": round(m.hblkhd / mb, 1),
            "in_use_mb": round(m.uordblks / mb, 1), "free_in_heap_mb": round(m.fordblks / mb, 1)}


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


_SKIP = (type(sys), type, type(len), type(lambda: 0), type(_rss_mb.__code__), threading.Thread)


def _deep_bytes(root, seen: set, depth: int = 12) -> int:
    """Bytes of arrays, byte strings and pictures reachable from ``root`` not already in ``seen``."""
    np = sys.modules.get("numpy")
    pil = sys.modules.get("PIL.Image")
    total, stack = 0, [(root, 0)]
    while stack:
        obj, d = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP) or d > depth:
            continue
        seen.add(id(obj))
        if np is not None and isinstance(obj, np.ndarray):
            total += obj.nbytes if obj.base is None else 0
            if obj.base is not None:
                stack.append((obj.base, d + 1))
        elif isinstance(obj, str):
            total += len(obj)
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            total += len(obj) if not isinstance(obj, memoryview) else obj.nbytes
        elif pil is not None and isinstance(obj, pil.Image):
            total += obj.width * obj.height * len(obj.getbands())
        elif isinstance(obj, dict):
            stack.extend((v, d + 1) for v in obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend((v, d + 1) for v in obj)
        elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
            if hasattr(obj, "__dict__"):
                stack.append((vars(obj), d + 1))
            for slot in getattr(type(obj), "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot):
                    stack.append((getattr(obj, slot), d + 1))
    return total


def _arrays() -> dict:
    """Every NumPy array that owns its data and that some gc-tracked container holds: total and largest shapes."""
    np = sys.modules.get("numpy")
    if np is None:
        return {}
    found: dict = {}
    for o in gc.get_objects():
        for r in gc.get_referents(o):
            if type(r) is np.ndarray:
                while isinstance(r.base, np.ndarray):
                    r = r.base
                if r.base is None and r.flags.owndata:
                    found[id(r)] = r
    by_shape: dict = {}
    for a in found.values():
        key = f"{a.dtype}{list(a.shape)}"
        by_shape[key] = by_shape.get(key, 0) + a.nbytes
    top = sorted(by_shape.items(), key=lambda kv: -kv[1])[:6]
    mb = 2 ** 20
    big: dict = {}
    holders: dict = {}
    for o in gc.get_objects():
        for r in gc.get_referents(o):
            if type(r) in (str, bytes) and len(r) > 20000 and id(r) not in big:
                big[id(r)] = len(r)
                where = type(o).__name__
                if isinstance(o, dict):
                    keys = [k for k, v in o.items() if v is r][:1]
                    where += f"[{str(keys[0])[:40]!r}]" if keys else ""
                holders[where] = holders.get(where, 0) + len(r)
    return {"big_strings": len(big), "big_strings_mb": round(sum(big.values()) / mb, 1),
            "big_string_holders": sorted(([k, round(v / mb, 1)] for k, v in holders.items()), key=lambda kv: -kv[1])[:8],
"numpy_mb": round(sum(a.nbytes for a in found.values()) / mb, 1), "numpy_arrays": len(found),
            "numpy_top": [f"{k}: {v / mb:.1f}" for k, v in top]}


def _alive(names) -> dict:
    """How many objects of these class names are alive, and (for each) the types that hold them."""
    objs = [o for o in gc.get_objects() if type(o).__name__ in names]
    out = {}
    for name in names:
        mine = [o for o in objs if type(o).__name__ == name]
        holders: dict = {}
        for o in mine[:200]:
            for r in gc.get_referrers(o):
                if r is objs or r is mine:
                    continue
                k = type(r).__name__
                if isinstance(r, dict):
                    keys = [key for key, v in r.items() if v is o][:1]
                    k += f"[{str(keys[0])[:30]}]" if keys else ""
                holders[k] = holders.get(k, 0) + 1
        out[name] = [len(mine), sorted(holders.items(), key=lambda kv: -kv[1])[:5]]
    del objs
    return out


def _describe(o) -> str:
    t = type(o).__name__
    if isinstance(o, dict):
        return f"dict({', '.join(str(k)[:20] for k in list(o)[:4])})"
    if t == "frame":
        return f"frame({o.f_code.co_name} {o.f_code.co_filename.rsplit('/', 2)[-1]}:{o.f_lineno})"
    if t == "function":
        return f"function({o.__qualname__})"
    if t == "method":
        return f"method({o.__qualname__ if hasattr(o, '__qualname__') else o.__func__.__qualname__})"
    if t == "cell":
        return "cell"
    if isinstance(o, threading.Thread):
        return f"Thread({o.name}, alive={o.is_alive()})"
    return t


def _holder_levels(found: list) -> list:
    """The kinds of referrers of ``found`` three levels up (counts, most first)."""
    import types

    mine = {id(found), id(sys._getframe())}
    levels, current = [], list(found)
    mine.add(id(current))
    for _ in range(4):
        kinds: dict = {}
        nxt: list = []
        mine.add(id(nxt))
        for o in current:
            for r in gc.get_referrers(o):
                if id(r) in mine or (isinstance(r, types.FrameType) and r.f_code.co_filename == __file__):
                    continue
                k = _describe(r)
                kinds[k] = kinds.get(k, 0) + 1
                nxt.append(r)
        levels.append(sorted(kinds.items(), key=lambda kv: -kv[1])[:6])
        current = nxt[:500]
        mine.add(id(current))
    return levels


def _namespace_holders() -> list:
    """Page-run namespaces (module dicts holding ``res``) that are alive, and what holds them."""
    found = [o for o in gc.get_objects() if isinstance(o, dict) and "res" in o and "__name__" in o]
    return [len(found), _holder_levels(found)]


def _dead_runner_chain() -> list:
    """ScriptRunners whose thread has ended, and what holds them."""
    runners = [o for o in gc.get_objects() if type(o).__name__ == "ScriptRunner"]
    dead = [r for r in runners if getattr(r, "_script_thread", None) is not None and not r._script_thread.is_alive()]
    del runners
    return [len(dead), _holder_levels(dead)]


def _streamlit() -> dict:
    rt_mod = sys.modules.get("streamlit.runtime.runtime")
    if rt_mod is None or not rt_mod.Runtime.exists():
        return {}
    rt = rt_mod.Runtime.instance()
    mb = 2 ** 20
    out = {}
    try:
        by_category: dict = {}
        for stats in rt.stats_mgr.get_stats().values():
            for s in stats:
                if hasattr(s, "byte_length"):
                    by_category[s.category_name] = by_category.get(s.category_name, 0) + s.byte_length
        out["stats_mb"] = {k: round(v / mb, 1) for k, v in by_category.items() if v > mb / 10}
        infos = rt._session_mgr.list_sessions()
        out["sessions"] = len(infos)
        out["active_sessions"] = rt._session_mgr.num_active_sessions()
        seen: set = set()
        caches = [o for o in gc.get_objects() if type(o).__name__ == "ResultCache"]
        out["result_caches_mb"] = round(sum(_deep_bytes(c._items, seen) for c in caches) / mb, 1)
        per = [round(_deep_bytes(i.session.session_state, seen) / mb, 1) for i in infos]
        out["session_state_mb"] = sorted(per, reverse=True)
        storage = getattr(rt.media_file_mgr, "_storage", None)
        files = getattr(storage, "_files_by_id", {})
        out["media_files"] = len(files)
        out["media_mb"] = round(sum(len(f.content) for f in list(files.values())) / mb, 1)
    except Exception as exc:  # noqa: BLE001 - a probe never breaks the server
        out["error"] = repr(exc)[:200]
    return out


def _loop():
    import tracemalloc

    every = float(os.environ.get("MEMPROBE_EVERY_S", "30"))
    trace = os.environ.get("MEMPROBE_TRACE") == "1"
    base_after = float(os.environ.get("MEMPROBE_BASE_AFTER_S", "120"))
    if trace:
        tracemalloc.start(int(os.environ.get("MEMPROBE_FRAMES", "1")))
    t0 = time.time()
    base = None
    while True:
        time.sleep(every)
        line = {"t": round(time.time() - t0), "rss_mb": _rss_mb(), **_mallinfo(), "threads": threading.active_count(),
                "gc_objects": len(gc.get_objects())}
        if trace:
            cur, peak = tracemalloc.get_traced_memory()
            line["py_mb"], line["py_peak_mb"] = round(cur / 2 ** 20, 1), round(peak / 2 ** 20, 1)
            if base is None and time.time() - t0 >= base_after:
                base = tracemalloc.take_snapshot()
            elif base is not None:
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)])
                top = snap.compare_to(base, "lineno")[:15]
                line["py_growth"] = [f"{s.size_diff / 2 ** 20:+.1f} MB {s.count_diff:+d} "
                                     f"{s.traceback[0].filename.split('site-packages/')[-1]}:{s.traceback[0].lineno}"
                                     for s in top]
                del snap
        line["streamlit_mb"] = _streamlit()
        if os.environ.get("MEMPROBE_HOLDERS") == "1":  # what holds page namespaces and finished script runners
            line["namespaces"], line["runners"] = _namespace_holders(), _dead_runner_chain()
        line["alive"] = _alive(("AppSession", "SessionState", "ScriptRunner", "PassResult", "Explanation", "DataFrame"))
        line.update(_arrays())
        line["py_blocks"] = sys.getallocatedblocks()
        if os.environ.get("MEMPROBE_COLLECT") == "1":  # a full collection each tick: how long, and what it frees
            t1 = time.perf_counter()
            line["gc_collected"] = gc.collect()
            line["gc_ms"] = round((time.perf_counter() - t1) * 1000)
            line["in_use_after_gc_mb"] = _mallinfo().get("in_use_mb")
        with open(_OUT, "a") as f:
            f.write(json.dumps(line) + "\n")


if os.environ.get("MEMPROBE_MEMRAY"):  # every allocation still alive at exit, with native stacks (memray installed)
    import atexit

    import memray

    _tracker = memray.Tracker(os.environ["MEMPROBE_MEMRAY"], native_traces=True,
                              file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS)
    _tracker.__enter__()
    _stopped = threading.Event()

    def _stop_tracker():
        if not _stopped.is_set():
            _stopped.set()
            _tracker.__exit__(None, None, None)

    def _watch_stop():  # the file MEMPROBE_MEMRAY.stop ends the tracking while the server still runs
        while not os.path.exists(os.environ["MEMPROBE_MEMRAY"] + ".stop"):
            time.sleep(2)
        _stop_tracker()

    threading.Thread(target=_watch_stop, name="memprobe-memray", daemon=True).start()
    atexit.register(_stop_tracker)

if _OUT:
    threading.Thread(target=_loop, name="memprobe", daemon=True).start()
