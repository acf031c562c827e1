"""A page never hands a widget a function of its own (a lambda or a ``def`` in the page's script). A widget keeps
its ``format_func``/``on_click``/``on_change`` for the whole session, and such a function's globals are the page
run's namespace: the pass result, every picture and table of that run stayed alive as long as the session
(the soak's page namespaces, tools/memprobe). Module-level functions of ``ui``/``core``, bound methods and
``functools.partial`` keep only what they name."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEPT = {"format_func", "on_click", "on_change"}
PAGES = sorted((ROOT / "app_pages").glob("*.py"))


def offenders(source: str, name: str = "page") -> list[str]:
    """Widget calls in ``source`` that are handed a lambda or a function defined in it."""
    tree = ast.parse(source)
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        widget = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        args = [(k.arg, k.value) for k in call.keywords if k.arg in KEPT]
        if widget == "download_button" and len(call.args) > 1:
            args.append(("data", call.args[1]))
        for arg, value in args:
            if isinstance(value, ast.Lambda) or (isinstance(value, ast.Name) and value.id in own):
                found.append(f"{name}:{call.lineno} {widget}({arg}=…)")
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_hands_widgets_no_function_of_its_own(page):
    assert offenders(page.read_text(), page.name) == []


def test_the_check_finds_a_page_function():
    source = ("def t(n):\n    return n\nst.multiselect('x', [], format_func=t)\nst.button('y', on_click=lambda: 0)\n"
              "st.download_button('z', lambda: b'', file_name='f')\nst.button('w', on_click=charts.map_title)\n")
    assert offenders(source) == ["page:3 multiselect(format_func=…)", "page:4 button(on_click=…)",
                                 "page:5 download_button(data=…)"]
