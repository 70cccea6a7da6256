"""normalise_text: each rule on hand-made text and on the seed where it occurs."""
import pathlib

from pipeline.normalise import normalise_text

SEEDS = pathlib.Path(__file__).resolve().parents[2] / "seeds"


def test_curly_quotes_become_ascii():
    assert normalise_text("North Korea\u2019s \u201cFriendship Bridge\u201d") == \
        "North Korea's \"Friendship Bridge\""


def test_nfkc_folds_compatibility_characters():
    # U+FB01 is the "fi" ligature; U+2026 an ellipsis; U+00A0 a no-break space.
    assert normalise_text("\ufb01nal\u2026 a\u00a0b") == "final... a b"


def test_markdown_image_with_brackets_in_alt_is_removed():
    text = "![Kim visits [YONHAP]](https://x.test/a.jpg)\nNorth Korea and Russia will"
    assert normalise_text(text) == "North Korea and Russia will"


def test_markdown_link_keeps_its_text():
    assert normalise_text("see [the report](https://x.test/r) now") == "see the report now"


def test_repeated_paragraphs_dropped_and_blank_lines_removed():
    text = "one\n\ntwo\none\n  two  \nthree"
    assert normalise_text(text) == "one\ntwo\nthree"


def test_seed_004_repeated_block_is_counted_once():
    raw = (SEEDS / "004_b499a5c0f51b9694.txt").read_text(encoding="utf-8")
    lines = [l for l in raw.splitlines() if l.strip()]
    # Hand-checked: 29 non-empty lines, of which 13 repeat an earlier line
    # (the block from "The bridge will stretch 850 meters" to "The future
    # remains uncertain" is pasted twice).
    assert len(lines) == 29
    out = normalise_text(raw).splitlines()
    assert len(out) == 16
    assert sum("The bridge will stretch 850 meters" in l for l in out) == 1


def test_seed_003_caption_image_removed():
    raw = (SEEDS / "003_b6ba5cc7916ebe2b.txt").read_text(encoding="utf-8")
    assert raw.startswith("![North Korean leader Kim Jong-un")
    out = normalise_text(raw)
    assert "koreadailyus.com" not in out and "YONHAP" not in out
    assert out.startswith("North Korea and Russia will begin operating")
