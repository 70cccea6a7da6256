"""Stage 2: normalise article text before entity extraction.

``normalise_text`` is a pure function, applied to the title and the body by
the ``NormaliseText`` transform. It is idempotent: normalised text is left
as it is. Rules 1 to 5 work on characters and are repeated until nothing
changes (a double-escaped ``&amp;lt;`` becomes ``<``; markup that still
changes after 5 rounds, nested deeper than any article, has each ``&``
replaced by ``" and "`` and its brackets by parentheses); rules 6 to 10 work
on lines and are repeated likewise (at most 5 rounds; a text whose
paragraphs themselves look hard-wrapped is unwrapped again).

1. SGML/HTML character references decoded (``&lt;`` -> ``<``, ``&amp;`` ->
   ``&``); Reuters-21578 ends every body with ``&#3;``.
2. Control characters removed (C0 except tab and line breaks, DEL, C1);
   ``\\r\\n`` and ``\\r`` become ``\\n``.
3. Unicode NFKC normalisation (compatibility forms, ligatures, ``…``).
4. Curly quotes and primes to ASCII quotes (``’`` -> ``'``, ``“`` -> ``"``),
   so ``North Korea’s`` and ``North Korea's`` are the same string.
5. Markdown images (``![alt](url)``) removed whole: alt text is a caption,
   not article text. Markdown links (``[text](url)``) keep their text. (An
   address with brackets in it is not taken for one.)
6. Hard-wrapped text (every line at most 80 characters, and paragraphs
   marked by an indent of 3+ spaces, or most lines long and unfinished, as
   in Reuters-21578) is unwrapped: a paragraph runs until a blank or
   indented line, its lines joined with a space.
7. Whitespace inside a line collapsed to one space; blank lines dropped.
8. Boilerplate lines dropped: author contact lines (a short line with an
   e-mail address, also written ``name(at)host``: ``- Contact the author at
   ...``, ``BY PARK HYUN-JU [...@joongang.co.kr]``), ``Follow ... on Google
   News`` (and other networks), and the Reuters sign-off ``Reuter``.
9. Headings ended: a line of 2+ words without final punctuation whose long
   words (4+ letters) are mostly capitalised, and which is followed by more
   text, gets a ``.``, so the sentence splitter does not merge a headline
   into the sentence after it (seeds 001 and 002).
10. Paragraphs (lines) that repeat one seen earlier in the same article,
    exactly, are dropped: syndicated copies often paste a block twice (seed 004).

``end_heading`` (rule 9 without the capitalisation test) is what the
extraction stage applies to an article's title before the body.
"""
import html
import re
import unicodedata

import apache_beam as beam

__all__ = ["normalise_text", "end_heading", "NormaliseText"]

_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# ![alt](url): the alt text may itself hold [brackets], as in "[YONHAP]". No part
# runs past a bracket it does not close, so a failed match stops at the next
# bracket: each "[" costs what lies before the next one, not the rest of the text.
_MD_IMAGE = re.compile(r"!\[(?:[^\[\]]|\[[^\[\]]*\])*\]\([^)\[\]]*\)")
_MD_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\((?:https?://|/|www\.)[^)\[\]]*\)")
# Double escaping (&amp;amp;lt;) in one step rather than a round each.
_AMP_CHAIN = re.compile(r"&(?:amp;)+")
# A decimal reference of 4,301+ digits (leading zeros too) makes html.unescape's
# int() raise: long ones are shortened first (see _short_decimal_ref).
_LONG_DECIMAL_REF = re.compile(r"&#([0-9]{8,});?")
_ROUNDS = 5
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_INDENTED = re.compile(r"^[ \t]{3,}\S")
_ENDS_SENTENCE = re.compile(r"[.!?:;]['\")\]]*$")
_WORD = re.compile(r"[^\W\d_][\w'-]*")
# Starts only where a run of address characters starts: tried from inside a run
# too, a long word without "@" cost time quadratic in its length.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+(?:@|\s?[(\[]at[)\]]\s?)[\w-]+(?:\.[\w-]+)+", re.I)
_FOLLOW = re.compile(r"^[-*\u2022]?\s*follow\b.{0,80}\bon (?:google news|twitter|x|facebook|"
                     r"telegram|instagram|linkedin|youtube|threads|whatsapp)\W*$", re.I)
_SIGN_OFF = re.compile(r"^reuters?$", re.I)
_WRAP_WIDTH = 80


def _is_hard_wrapped(lines):
    # The Reuters sign-off is no part of the text: counted, it made a short item's
    # lines look mostly finished (then unwrapped only by a second round, with a
    # heading "." left in its first sentence).
    nonblank = [l.rstrip() for l in lines if l.strip() and not _SIGN_OFF.match(l.strip())]
    if len(nonblank) < 2 or max(len(l) for l in nonblank) > _WRAP_WIDTH:
        return False
    if any(_INDENTED.match(l) for l in nonblank[1:]):
        return True
    unfinished = sum(len(l.strip()) >= 45 and not _ENDS_SENTENCE.search(l) for l in nonblank)
    return len(nonblank) >= 3 and 2 * unfinished >= len(nonblank)


def _unwrap(lines):
    paragraphs = []
    for line in lines:
        if not line.strip():
            paragraphs.append("")
        elif not paragraphs or not paragraphs[-1] or line[:1] in (" ", "\t"):
            paragraphs.append(line)
        else:
            paragraphs[-1] += " " + line
    return paragraphs


def _is_boilerplate(line):
    if _FOLLOW.match(line) or _SIGN_OFF.match(line):
        return True
    return len(line.split()) <= 15 and _EMAIL.search(line) is not None


def _is_heading(line):
    if _ENDS_SENTENCE.search(line) or len(line.split()) < 2:
        return False
    long_words = [w for w in _WORD.findall(line) if len(w) >= 4]
    return bool(long_words) and 2 * sum(w[0].isupper() for w in long_words) >= len(long_words)


def end_heading(line: str) -> str:
    """``line`` with a final ``.`` unless it already ends a sentence."""
    line = line.rstrip()
    return line if not line or _ENDS_SENTENCE.search(line) else line + "."


def _short_decimal_ref(match):
    """``&#`` and 8+ digits as html.unescape reads it: past U+10FFFF (7+ significant
    digits) U+FFFD, else the same reference without its leading zeros."""
    digits = match.group(1).lstrip("0")
    return "\ufffd" if len(digits) > 7 else f"&#{digits or '0'};"


def _characters_once(text):
    """Rules 1 to 5, once."""
    if "&" in text:
        text = _LONG_DECIMAL_REF.sub(_short_decimal_ref, _AMP_CHAIN.sub("&", text))
        text = html.unescape(text)
    # Controls go before NFKC, which would compose across a removed one later.
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    if "[" in text:
        text = _MD_LINK.sub(r"\1", _MD_IMAGE.sub("", text))
    return text


def _normalise_characters(text):
    """Rules 1 to 5 until nothing changes (one extra round to see it, usually)."""
    for _ in range(_ROUNDS):
        cleaned = _characters_once(text)
        if cleaned == text:
            return text
        text = cleaned
    # Still changing: markup nested on purpose. Without & and brackets, and after
    # NFKC and the quotes, no rule has anything left to do.
    text = text.replace("&", " and ").replace("[", "(").replace("]", ")")
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


def _lines_once(text):
    """Rules 6 to 10, once."""
    lines = text.splitlines()
    if _is_hard_wrapped(lines):
        lines = _unwrap(lines)
    lines = [_SPACES.sub(" ", line).strip() for line in lines]
    lines = [line for line in lines if line and not _is_boilerplate(line)]
    seen = set()
    paragraphs = []
    for number, line in enumerate(lines):
        if number < len(lines) - 1 and _is_heading(line):
            line += "."
        if line in seen:
            continue
        seen.add(line)
        paragraphs.append(line)
    return "\n".join(paragraphs)


def normalise_text(text: str) -> str:
    """Return ``text`` normalised as the module docstring describes."""
    text = _normalise_characters(text)
    # The lines a round leaves are paragraphs, unindented and without blank lines
    # between them: if they still look hard-wrapped, the next round joins them,
    # and the one after may find the joined line is boilerplate (at most 4 rounds).
    # Rules 6 to 10 add nothing rules 1 to 5 would change: spaces, "." and line
    # breaks only.
    for _ in range(_ROUNDS):
        cleaned = _lines_once(text)
        if cleaned == text:
            break
        text = cleaned
    return text


class NormaliseText(beam.PTransform):
    """``Article`` -> ``Article`` with ``title`` and ``body`` normalised.

    Timestamps and windows are kept. Example::

        clean = articles | 'NormaliseText' >> NormaliseText()
    """

    def expand(self, articles):
        return articles | "NormaliseTitleAndBody" >> beam.Map(
            lambda a: a._replace(title=normalise_text(a.title),
                                 body=normalise_text(a.body)))
