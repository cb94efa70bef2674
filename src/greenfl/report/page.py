"""The page every report is written into: one self-contained HTML file (inline SVG and CSS,
no script, nothing fetched), its sections listed in a header."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape

from greenfl._version import __version__

CSS = """
:root { --ink:#1d2327; --muted:#5b6770; --line:#d9dee2; --bg:#f6f7f8; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width: 1000px; margin: 0 auto; padding: 20px 24px 40px; }
header h1 { font-size: 22px; margin: 0 0 2px; }
header p { margin: 2px 0; color: var(--muted); }
h2 { font-size: 17px; margin: 28px 0 6px; padding-top: 6px; border-top: 1px solid var(--line); }
section > p.lead { margin: 0 0 8px; color: var(--muted); }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap:10px;
         margin-top: 12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
        padding:10px 12px; }
.card .label { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.card .value { font-size:19px; font-weight:650; margin:2px 0; font-variant-numeric: tabular-nums; }
.card .note { font-size:12px; color:var(--muted); }
figure { margin: 6px 0 4px; background:var(--card); border:1px solid var(--line);
         border-radius:8px; padding:8px; }
figure svg.plot { width:100%; height:auto; display:block; }
figcaption { font-size:12px; color:var(--muted); padding: 4px 4px 0; }
table { border-collapse: collapse; width:100%; background:var(--card); font-size:12.5px;
        font-variant-numeric: tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left;
         vertical-align:top; }
th { background:#eef1f3; font-weight:600; }
td.num, th.num { text-align:right; }
.scroll { max-height: 420px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
ul.equiv { margin: 6px 0; padding-left: 18px; }
ul.equiv li { margin: 3px 0; }
.src { color: var(--muted); font-size: 12px; }
details { background:var(--card); border:1px solid var(--line); border-radius:6px;
          padding:6px 10px; margin: 6px 0; }
summary { cursor: pointer; font-weight:600; }
pre { font-size:12px; overflow:auto; max-height: 480px; margin: 6px 0; }
.pill { display:inline-block; padding:0 6px; border-radius:9px; background:#eef1f3;
        font-size:12px; }
nav { font-size: 13px; margin-top: 8px; }
nav a { color: var(--ink); margin-right: 10px; }
"""

Section = tuple[str, str, str]  # (id, title, inner html)


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def note(text: str, **data: str) -> str:
    """A plain paragraph saying why a section shows nothing (``data``: data-* attributes
    for tests and scrapers)."""
    attrs = "".join(f" data-{k.replace('_', '-')}='{escape(v)}'" for k, v in data.items())
    return f"<p class='lead'{attrs}>{escape(text)}</p>"


def page(title: str, header_html: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{sid}">{escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{escape(t)}</h2>{inner}</section>' for sid, t, inner in sections
    )
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No external resource of any kind may load: the file must work offline.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<header>{header_html}<nav>{nav}</nav></header>{body}"
        f"<footer><p class='src'>Made by greenfl {escape(__version__)} on {made}. "
        "Every number is read from the run's ledger.sqlite.</p></footer>"
        "</main></body></html>\n"
    )
