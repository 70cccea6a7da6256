"""Replay readers: the seed manifest, Reuters SGML and JSON Lines."""
import datetime as dt
import json
import pathlib
import re

import pytest

from connectors.replay import read_articles, read_reuters

ROOT = pathlib.Path(__file__).resolve().parents[2]
REUTERS = ROOT.parent / "shared" / "corpora" / "reuters21578"


def test_seed_manifest_gives_five_dated_articles():
    arts = {a["id"]: a for a in read_articles([ROOT / "seeds"])}
    assert sorted(arts) == [f"seed-00{i}" for i in range(5)]
    day = lambda a: dt.datetime.fromtimestamp(a["published_at"] / 1000, dt.timezone.utc).date()
    assert str(day(arts["seed-004"])) == "2025-05-03"  # "May 3, 2025, 12:23 pm"
    assert str(day(arts["seed-002"])) == "2024-12-16"
    # A headline on its own line is the title and is not repeated in the body.
    assert arts["seed-004"]["title"] == "Bridging Alliances: The New Road Between Russia and North Korea"
    assert not arts["seed-004"]["body"].startswith("Bridging Alliances")


def test_reuters_sgml(tmp_path):
    sgm = tmp_path / "reut2-999.sgm"
    sgm.write_text(
        '<REUTERS TOPICS="YES" NEWID="7">\n<DATE>26-FEB-1987 15:01:01.79</DATE>\n'
        '<TEXT>&#2;\n<TITLE>BAHIA &lt;COCOA&gt; REVIEW</TITLE>\n<BODY>Showers &amp; sun.\n'
        ' Reuter\n&#3;</BODY></TEXT>\n</REUTERS>\n'
        '<REUTERS NEWID="8">\n<DATE>26-FEB-1987 15:02:20.00</DATE>\n<TEXT TYPE="BRIEF">'
        '<TITLE>NO BODY</TITLE></TEXT></REUTERS>\n', encoding="latin-1")
    skipped = {}
    arts = list(read_reuters(sgm, skipped))
    assert skipped == {"no_body": 1}
    assert len(arts) == 1
    a = arts[0]
    assert a["id"] == "reuters-7" and a["title"] == "BAHIA <COCOA> REVIEW"
    assert a["body"].startswith("Showers & sun.")
    # 1987-02-26 15:01:01 UTC = 541350061 s (date -u -d '1987-02-26 15:01:01' +%s),
    # and .79 s (hundredths of a second)
    assert a["published_at"] == 541350061790


def _one_story(tmp_path, date_text, newid="9"):
    sgm = tmp_path / "reut2-998.sgm"
    sgm.write_text(f'<REUTERS NEWID="{newid}">\n<DATE>{date_text}</DATE>\n<TEXT>'
                   '<TITLE>T</TITLE><BODY>Body text.</BODY></TEXT>\n</REUTERS>\n',
                   encoding="latin-1")
    skipped = {}
    return list(read_reuters(sgm, skipped)), skipped


# Expected epochs from `date -u -d 'YYYY-MM-DD HH:MM:SS' +%s`, then the fraction by hand.
@pytest.mark.parametrize("date_text, want_ms", [
    # A one-digit day: [:20] kept the "." of the fraction and strptime refused it.
    ("1-MAR-1987 01:30:29.50", 541560629_500),
    (" 7-APR-1987 16:22:00.0", 544810920_000),           # a space in front, tenths
    ("3-MAR-1987  09:15:05.40", 541761305_400),          # two spaces
    ("27-MAR-1987 00:02:59.13&#5;&#5;&#5;RM", 543801779_130),  # control codes after it
    ("9-APR-1987 00:00:00.00    # date added by S Finch as guesswork ", 544924800_000),
])
def test_reuters_dates_in_every_shape_of_the_corpus(tmp_path, date_text, want_ms):
    arts, skipped = _one_story(tmp_path, date_text)
    assert skipped == {}
    assert [a["published_at"] for a in arts] == [want_ms]


def test_reuters_time_out_of_range_keeps_the_day(tmp_path, caplog):
    # reut2-017.sgm, NEWID 17192: "605:12:19.12"; the story is dated 03-31 in its slug too.
    arts, skipped = _one_story(tmp_path, "31-MAR-1987 605:12:19.12", newid="17192")
    assert skipped == {}
    assert [a["published_at"] for a in arts] == [544147200_000]  # 1987-03-31 00:00 UTC
    assert "reuters-17192" in caplog.text


def test_reuters_unreadable_day_is_skipped_by_reason(tmp_path):
    arts, skipped = _one_story(tmp_path, "sometime in 1987")
    assert arts == [] and skipped == {"bad_date": 1}


_STORY = re.compile(r"<REUTERS\b.*?</REUTERS>", re.S)


def test_reuters_whole_corpus_every_story_with_body_and_date_is_read():
    """Every reut2-*.sgm: the stories with a <BODY> and a <DATE> are the ones read, and the
    skipped counts are the others. Counted here with plain substring tests, not the reader."""
    files = sorted(REUTERS.glob("reut2-*.sgm"))
    if len(files) != 22:
        pytest.skip(f"Reuters-21578 (22 reut2-*.sgm files) not found at {REUTERS}")
    want_ids, no_body, no_date, days = set(), 0, 0, {}
    for sgm in files:
        for story in _STORY.findall(sgm.read_bytes().decode("latin-1")):
            newid = re.search(r'NEWID="(\d+)"', story).group(1)
            if "<BODY>" not in story:
                no_body += 1
            elif "<DATE>" not in story:
                no_date += 1
            else:
                want_ids.add(f"reuters-{newid}")
                date = story.split("<DATE>", 1)[1].split()[0]  # "1-MAR-1987"
                days[f"reuters-{newid}"] = dt.datetime.strptime(date, "%d-%b-%Y").date()
    skipped = {}
    got = list(read_articles([REUTERS], skipped))
    # The corpus README: 21,578 stories, of which 19,043 have a body.
    assert len(want_ids) + no_body + no_date == 21_578
    assert len(want_ids) == 19_043
    assert len(got) == len(want_ids) and {a["id"] for a in got} == want_ids
    assert skipped == {k: v for k, v in (("no_body", no_body), ("no_date", no_date)) if v}
    utc_day = lambda a: dt.datetime.fromtimestamp(a["published_at"] / 1000, dt.timezone.utc).date()
    wrong_day = [(a["id"], utc_day(a), days[a["id"]]) for a in got if utc_day(a) != days[a["id"]]]
    assert wrong_day == []
    # The days the old reader lost (the 1st to the 9th of a month) are there.
    assert sum(1 for a in got if utc_day(a).day <= 9) > 5_000


def _jsonl(tmp_path, *values):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"id": f"a{i}", "title": "t", "body": "b",
                                        "published_at": v}) + "\n"
                            for i, v in enumerate(values)) + "\n", encoding="utf-8")
    return path


def test_jsonl_published_at_in_every_form_the_decoder_takes(tmp_path):
    path = _jsonl(tmp_path, 1746274980000, "2025-05-03T12:23:00Z", "2025-05-03T12:23:00+02:00",
                  "2025-05-03T12:23:00.250+00:00", "2025-05-03 12:23:00Z")
    got = [a["published_at"] for a in read_articles([path])]
    # 2025-05-03 12:23:00 UTC = 1746274980 s; +02:00 is 10:23 UTC = 1746267780 s.
    assert got == [1746274980000, 1746274980000, 1746267780000, 1746274980250, 1746274980000]


@pytest.mark.parametrize("value, words", [
    ("2025-05-03T12:23:00", "has no time zone"),
    ("yesterday", "is not ISO-8601"),
    (True, "boolean"),
])
def test_jsonl_bad_published_at_names_file_line_and_article(tmp_path, value, words):
    path = _jsonl(tmp_path, 1, value)
    with pytest.raises(ValueError, match=rf"a\.jsonl:2: article 'a1': .*{words}"):
        list(read_articles([path]))


def test_jsonl_without_published_at_names_the_line(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"id": "x", "title": "t", "body": "b"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"b\.jsonl:1: article 'x' has no published_at"):
        list(read_articles([path]))
