"""The pages' small text helpers: counts with their plural ("1 classes" was on the Train page) and file names that
fit a narrow caption without breaking inside the extension ("…00013810.J / PEG" in the Train page's gallery)."""
from hypothesis import given, strategies as st

from ui.text import plural, short_name


def test_counts_take_the_right_word():
    assert plural(1, "class", "classes") == "1 class" and plural(2, "class", "classes") == "2 classes"
    assert plural(0, "image") == "0 images" and plural(1, "image") == "1 image"


def test_a_long_file_name_keeps_its_extension_and_both_ends():
    assert short_name("ILSVRC2012_val_00013810.JPEG") == "ILSV…00013810.JPEG"
    assert short_name("dog/ILSVRC2012_val_00013810.JPEG") == "ILSV…00013810.JPEG"  # the folder left out
    assert short_name("cat.jpg") == "cat.jpg" and short_name("C:\\photos\\cat.jpg") == "cat.jpg"


@given(st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s and "\\" not in s and s.strip(". ")),
       st.integers(8, 40))
def test_short_names_never_exceed_their_width(name, width):
    out = short_name(name, width)
    assert len(out) <= width or out == name
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext) <= 6 and len(name) > width >= 10:
        assert out.endswith("." + ext)  # the extension is never cut
