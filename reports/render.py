"""Render a report `Document` as Markdown (PNG files beside it) or one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from watchkeeper.reports.document import Chart, Document, Table

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1000px;
color:#111827;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}.sub{color:#6b7280;margin-top:0}h2{border-bottom:1px solid #e5e7eb;padding-bottom:.3rem;
margin-top:2rem}table{border-collapse:collapse;width:100%;font-size:.9rem;margin:1rem 0}th,td{border-bottom:1px solid
#e5e7eb;padding:.35rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f9fafb}
figure{margin:1rem 0}figcaption{color:#6b7280;font-size:.85rem}img{max-width:100%}.note{color:#6b7280;font-size:.85rem}
"""


def write_markdown(doc: Document, path: Path) -> list[Path]:
    """Write `path` and its charts into `<stem>_charts/`; the files written."""
    chart_dir = path.parent / f"{path.stem}_charts"
    written: list[Path] = []
    lines = [f"# {doc.title}", "", f"_{doc.subtitle}_", ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for para in section.paragraphs:
            lines += [para, ""]
        for table in section.tables:
            lines += [*_md_table(table), ""]
        for chart in section.charts:
            chart_dir.mkdir(parents=True, exist_ok=True)
            file = chart_dir / f"{chart.name}.png"
            file.write_bytes(chart.png)
            written.append(file)
            lines += [f"![{chart.caption}]({chart_dir.name}/{file.name})", "", f"_{chart.caption}_", ""]
    for note in doc.notes:
        lines += [f"> {note}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return [path, *written]


def write_html(doc: Document, path: Path) -> list[Path]:
    """One HTML file with the charts inlined as PNG data URIs (mailable, no external requests)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1><p class=sub>{e(doc.subtitle)}</p>",
    ]
    for section in doc.sections:
        parts.append(f"<section><h2>{e(section.title)}</h2>")
        parts += [f"<p>{e(p)}</p>" for p in section.paragraphs]
        parts += [_html_table(t) for t in section.tables]
        parts += [_html_chart(c) for c in section.charts]
        parts.append("</section>")
    parts += [f"<p class=note>{e(n)}</p>" for n in doc.notes]
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return [path]


def _md_table(table: Table) -> list[str]:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    out = ["| " + " | ".join(cell(c) for c in table.columns) + " |"]
    out.append("|" + "|".join([":---"] + ["---:"] * (len(table.columns) - 1)) + "|")
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return out


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_chart(chart: Chart) -> str:
    data = base64.b64encode(chart.png).decode()
    cap = html.escape(chart.caption)
    return f"<figure><img alt='{cap}' src='data:image/png;base64,{data}'><figcaption>{cap}</figcaption></figure>"
