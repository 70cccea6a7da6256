"""Stage 2: normalise article text before entity extraction.

``normalise_text`` is a pure function, applied to the title and the body by
the ``NormaliseText`` transform. Rules, in order:

1. Unicode NFKC normalisation (compatibility forms, ligatures, ``…``).
2. Curly quotes and primes to ASCII quotes (``’`` -> ``'``, ``“`` -> ``"``),
   so ``North Korea’s`` and ``North Korea's`` are the same string.
3. Markdown images (``![alt](url)``) removed whole: alt text is a caption,
   not article text. Markdown links (``[text](url)``) keep their text.
4. Whitespace inside a line collapsed to one space; blank lines dropped.
5. Paragraphs (lines) that repeat one seen earlier in the same article,
   exactly, are dropped: syndicated copies often paste a block twice (seed 004).
"""
import re
import unicodedata

import apache_beam as beam

__all__ = ["normalise_text", "NormaliseText"]

_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
})
# ![alt](url): the alt text may itself hold [brackets], as in "[YONHAP]".
_MD_IMAGE = re.compile(r"!\[(?:[^\[\]]|\[[^\]]*\])*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\((?:https?://|/|www\.)[^)]*\)")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")


def normalise_text(text: str) -> str:
    """Return ``text`` normalised as the module docstring describes."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    seen = set()
    paragraphs = []
    for line in text.splitlines():
        line = _SPACES.sub(" ", line).strip()
        if not line or line in seen:
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
