"""Stage 2: normalise article text before entity extraction.

``normalise_text`` is a pure function, applied to the title and the body by
the ``NormaliseText`` transform. Rules, in order:

1. SGML/HTML character references decoded (``&lt;`` -> ``<``, ``&amp;`` ->
   ``&``); Reuters-21578 ends every body with ``&#3;``.
2. Unicode NFKC normalisation (compatibility forms, ligatures, ``…``).
3. Curly quotes and primes to ASCII quotes (``’`` -> ``'``, ``“`` -> ``"``),
   so ``North Korea’s`` and ``North Korea's`` are the same string.
4. Control characters removed (C0 except tab and line breaks, DEL, C1);
   ``\\r\\n`` and ``\\r`` become ``\\n``.
5. Markdown images (``![alt](url)``) removed whole: alt text is a caption,
   not article text. Markdown links (``[text](url)``) keep their text.
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
# ![alt](url): the alt text may itself hold [brackets], as in "[YONHAP]".
_MD_IMAGE = re.compile(r"!\[(?:[^\[\]]|\[[^\]]*\])*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\((?:https?://|/|www\.)[^)]*\)")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_INDENTED = re.compile(r"^[ \t]{3,}\S")
_ENDS_SENTENCE = re.compile(r"[.!?:;]['\")\]]*$")
_WORD = re.compile(r"[^\W\d_][\w'-]*")
_EMAIL = re.compile(r"[\w.+-]+(?:@|\s?[(\[]at[)\]]\s?)[\w-]+(?:\.[\w-]+)+", re.I)
_FOLLOW = re.compile(r"^[-*\u2022]?\s*follow\b.{0,80}\bon (?:google news|twitter|x|facebook|"
                     r"telegram|instagram|linkedin|youtube|threads|whatsapp)\W*$", re.I)
_SIGN_OFF = re.compile(r"^reuters?$", re.I)
_WRAP_WIDTH = 80


def _is_hard_wrapped(lines):
    nonblank = [l.rstrip() for l in lines if l.strip()]
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


def normalise_text(text: str) -> str:
    """Return ``text`` normalised as the module docstring describes."""
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
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


class NormaliseText(beam.PTransform):
    """``Article`` -> ``Article`` with ``title`` and ``body`` normalised.

    Timestamps and windows are kept. Example::

        clean = articles | 'NormaliseText' >> NormaliseText()
    """

    def expand(self, articles):
        return articles | "NormaliseTitleAndBody" >> beam.Map(
            lambda a: a._replace(title=normalise_text(a.title),
                                 body=normalise_text(a.body)))
