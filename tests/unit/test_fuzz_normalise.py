"""Property-based tests of ``normalise_text``: it never raises, and it is
idempotent (text it has normalised is left as it is), on arbitrary text and
on text built from the pieces its rules look for (entities, markdown, wrapped
lines, boilerplate, headings, repeats)."""
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.normalise import end_heading, normalise_text

# Any code point, lone surrogates included (st.text() leaves them out).
ANY_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]))

PIECES = st.sampled_from([
    "&amp;", "&lt;", "&gt;", "&#38;", "&#60;", "&#x26;", "&#3;", "&amp", "&", "#", "lt;",
    "amp;", "&hellip;", "\r\n", "\r", "\n", "\n\n", " ", "   ", "    ", "\t", "\x05", "\x85",
    "\u00a0", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "![", "[", "](", "]", ")", "(",
    "https://x.test/a.jpg", "www.x.test", "Reuter", "REUTERS", "Follow EurAsian Times on Google News",
    "- Contact the author at", "kim@joongang.co.kr", "name(at)host.org", ".", "!", "?", ":",
    ";", "\u2019", "\u201c", "\u201d", "\ufb01", "\u2026", "\uff06", "\u2060", "North", "Korea",
    "Russia", "BRIDGE", "Tumen", "River", "the", "bridge", "of", "and", "Kim's", "e",
    "\u0301", "\u0307", "\uff3b", "\uff3d", "\uff08", "\uff09", "&#35;", "&#108;", "&#x5b;",
    "![x](http://a.test/i.png)", "[x](https://a.test)", "[x](/p)", "&#0000000065;",
    "&#99999999;",
])
WORD = st.text(st.characters(categories=["L"]), min_size=1, max_size=12)
TEXT = st.lists(st.one_of(PIECES, WORD, st.text(ANY_CHAR, max_size=4)), max_size=80).map("".join)

# Hard-wrapped text: lines of 40 to 80 characters, some indented, some blank.
LINE = st.builds(lambda indent, words, end: indent + " ".join(words)[:80 - len(indent)] + end,
                 st.sampled_from(["", "", "    "]),
                 st.lists(st.one_of(WORD, PIECES), min_size=6, max_size=16),
                 st.sampled_from(["", "", ".", ":"]))
WRAPPED = st.lists(st.one_of(LINE, st.just("")), min_size=2, max_size=12).map("\n".join)


@given(st.text(ANY_CHAR))
def test_any_text_is_normalised_without_error_and_idempotently(text):
    once = normalise_text(text)
    assert isinstance(once, str)
    assert normalise_text(once) == once


@given(TEXT)
def test_text_of_the_rules_pieces_is_normalised_idempotently(text):
    once = normalise_text(text)
    assert normalise_text(once) == once


@given(WRAPPED)
def test_wrapped_text_is_normalised_idempotently(text):
    once = normalise_text(text)
    assert normalise_text(once) == once


@given(st.text(ANY_CHAR))
def test_end_heading_is_idempotent(line):
    assert end_heading(end_heading(line)) == end_heading(line)
