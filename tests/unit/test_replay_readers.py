"""Replay readers: the seed manifest and Reuters SGML."""
import datetime as dt
import pathlib

from connectors.replay import read_articles, read_reuters

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
    # 1987-02-26 15:01:01 UTC = 541350061 s (date -u -d '1987-02-26 15:01:01' +%s)
    assert a["published_at"] == 541350061000
