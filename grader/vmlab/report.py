"""What course staff read after `vmlab batch`: report.html, and each student's feedback, as
Markdown (feedback.md, what the student sees on Gradescope) and as a web page (feedback.html).

Every page opens offline in any browser: no script, no server, no fonts or styles from
elsewhere; the report's charts are inline SVG. The report shows the score histogram, each test's
pass rate as a bar (grouped by part), what could not be graded and why, and a row per student
that links to their feedback page. A feedback page is the Markdown rendered by markdown-it-py
(CommonMark and its tables; raw HTML in it is shown as text, never run, since the feedback
quotes the student's own tracebacks and messages).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from .batch_export import Batch, Entry
from .rubric import Rubric

BINS = 10

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1300px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } th { border-bottom: 1px solid #999; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th.num { text-align: right; }
.bar { fill: #4a7fb5; } .fail { fill: #d9534f; } .axis { stroke: #888; }
.error { color: #b00; } .muted { color: #777; } a.review { color: #a60; }
#review { list-style: none; padding-left: 8px; } #review ul { list-style: disc; }
.part { font-weight: bold; padding-top: 8px; }
.full { color: #1a7f37; font-weight: bold; } .lost { color: #b00; font-weight: bold; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 8px 10px; overflow-x: auto;
      font: 12.5px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #f2f2f2; padding: 0 2px; } pre code { background: none; padding: 0; }
section.test { border-top: 1px solid #ccc; margin-top: 1.5em; }
section.test table td, section.test table th { border: 1px solid #ddd; }
nav { font-size: 13px; margin-bottom: 1em; } div.wide { overflow-x: auto; }
#students { font-size: 12.5px; } #students td, #students th { padding: 2px 5px; }
#students td { white-space: nowrap; } a.error { color: #b00; }
details summary { cursor: pointer; color: #555; }
"""


def esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def feedback_markdown(results: dict, entry: Entry, rubric: Rubric) -> str:
    """A student's results.json as one Markdown page: the score table, then each test's
    output as the autograder shows it."""
    who = ", ".join(f"{s.name} ({s.sid})" if s.sid else s.name for s in entry.submitters)
    tests = sorted(results.get("tests", []), key=lambda t: [int(n) for n in str(
        t.get("number") or "0").split(".") if n.isdigit()])
    top = sum(float(t.get("max_score", 0)) for t in tests)
    lines = [f"# {rubric.title}", "", f"**Submission** {entry.key}: {who}", "",
             f"**Score: {float(results.get('score', 0)):g} / {top:g}**", ""]
    if results.get("output"):
        lines += [results["output"], ""]
    lines += ["| # | test | score |", "| --- | --- | --- |"]
    for t in tests:
        lines.append(f"| {t.get('number', '')} | {t.get('name', '')} | "
                     f"{float(t.get('score', 0)):g} / {float(t.get('max_score', 0)):g} |")
    for t in tests:
        lines += ["", f"## {t.get('number', '')}. {t.get('name', '')}", "",
                  (t.get("output") or "").strip()]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(text: str) -> str:
    """Markdown as HTML: CommonMark and its tables, raw HTML escaped (shown, never run)."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # rich brings it; without it, the text as it is
        return f"<pre>{esc(text)}</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def feedback_html(results: dict, entry: Entry, rubric: Rubric) -> str:
    """A student's results.json as a web page for course staff: what feedback.md says, with a
    score table that links to each test's feedback, and a way back to the report."""
    who = ", ".join(f"{s.name} ({s.sid})" if s.sid else s.name for s in entry.submitters)
    tests = sorted(results.get("tests", []), key=lambda t: [int(n) for n in str(
        t.get("number") or "0").split(".") if n.isdigit()])
    top = sum(float(t.get("max_score", 0)) for t in tests)
    out = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
           f"<title>{esc(who or entry.key)}: {esc(rubric.title)}</title>",
           f"<style>{CSS}</style></head><body>",
           '<nav><a href="../../report.html">&larr; the batch report</a> · '
           '<a href="feedback.md">this feedback as Markdown</a> (what the student sees)</nav>',
           f"<h1>{esc(who or entry.key)}</h1>",
           f'<p class=muted>{esc(rubric.title)} · submission {esc(entry.key)}</p>',
           f"<p id=score><b>Score: {float(results.get('score', 0)):g} / {top:g}</b></p>"]
    if results.get("output"):
        out.append(f"<div id=output>{render_markdown(results['output'])}</div>")
    out.append("<table id=scores><tr><th>#</th><th>test</th><th>score</th></tr>")
    for i, t in enumerate(tests):
        score, most = float(t.get("score", 0)), float(t.get("max_score", 0))
        out.append(f'<tr><td class="num">{esc(t.get("number", ""))}</td>'
                   f'<td><a href="#test-{i}">{esc(t.get("name", ""))}</a></td>'
                   f'<td class="num {"full" if score >= most else "lost"}">'
                   f"{score:g} / {most:g}</td></tr>")
    out.append("</table>")
    for i, t in enumerate(tests):
        score, most = float(t.get("score", 0)), float(t.get("max_score", 0))
        body = render_markdown((t.get("output") or "").strip())
        if score >= most:  # what failed is what staff read: a passed test's output folds away
            body = f"<details><summary>passed: its output</summary>{body}</details>"
        out.append(f'<section class=test id="test-{i}"><h2>{esc(t.get("number", ""))}. '
                   f'{esc(t.get("name", ""))} <span class="{"full" if score >= most else "lost"}">'
                   f"{score:g} / {most:g}</span></h2>{body}</section>")
    out.append("</body></html>\n")
    return "\n".join(out)


def histogram_svg(totals: list[float], top: float) -> str:
    """Counts of students per tenth of the maximum, as bars."""
    counts = [0] * BINS
    for s in totals:
        counts[min(BINS - 1, int(s / top * BINS)) if top else 0] += 1
    w, h, pad = 560, 200, 30
    bar = (w - 2 * pad) / BINS
    most = max(counts) or 1
    parts = [f'<svg role="img" aria-label="score histogram" width="{w}" height="{h + 40}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<line class="axis" x1="{pad}" y1="{h}" x2="{w - pad}" y2="{h}"/>']
    for i, c in enumerate(counts):
        bh = (h - 20) * c / most
        x = pad + i * bar
        parts.append(f'<rect class="bar" x="{x + 2:.1f}" y="{h - bh:.1f}" width="{bar - 4:.1f}" '
                     f'height="{bh:.1f}"><title>{c} student(s)</title></rect>')
        if c:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{h - bh - 4:.1f}" font-size="12" '
                         f'text-anchor="middle">{c}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{h + 16}" font-size="11" '
                     f'text-anchor="middle">{top * i / BINS:g}–{top * (i + 1) / BINS:g}</text>')
    parts.append(f'<text x="{w / 2}" y="{h + 34}" font-size="12" text-anchor="middle">'
                 f'score (out of {top:g})</text></svg>')
    return "".join(parts)


def rate_bar(rate: float) -> str:
    w = 240
    return (f'<svg width="{w + 50}" height="16" xmlns="http://www.w3.org/2000/svg">'
            f'<rect class="fail" x="0" y="2" width="{w}" height="12"/>'
            f'<rect class="bar" x="0" y="2" width="{w * rate:.1f}" height="12"/>'
            f'<text x="{w + 6}" y="13" font-size="12">{rate:.0%}</text></svg>')


def _test_rows(results: dict[str, dict], rubric: Rubric, tests: list) -> list[str]:
    from .batch import TEST_ID
    rows = []
    for part in rubric.parts:
        mine = [t for t in tests if t.part == part]
        if not mine:
            continue
        file, group = rubric.parts[part]
        file = file if file.startswith("(") else f"({file})"
        rows.append(f'<tr><td class="part" colspan="5">{esc(group)}: {esc(part)} '
                    f'<span class="muted">{esc(file)}</span></td></tr>')
        for t in mine:
            passed = total = 0
            for r in results.values():
                for got in r.get("tests", []):
                    m = TEST_ID.search(got.get("name", ""))
                    if m and m.group(1) == t.id:
                        total += 1
                        passed += float(got.get("score", 0)) >= float(got.get("max_score", 0))
            rate = passed / total if total else 0.0
            rows.append(f'<tr class="test" data-test="{esc(t.id)}" data-passed="{passed}" '
                        f'data-total="{total}"><td class="num">{esc(t.number)}</td>'
                        f'<td>{esc(t.id)}</td><td class="num">{t.weight:g}</td>'
                        f'<td class="num">{passed} / {total}</td><td>{rate_bar(rate)}</td></tr>')
    return rows


def write_report(path: Path, found: Batch, results: dict[str, dict], errors: dict[str, str],
                 rubric: Rubric, tests: list, reviews: dict[str, list[str]] | None = None,
                 ) -> None:
    from .batch import part_scores, shown_problems, write_atomic
    problems = shown_problems(found, errors)
    top = sum(t.weight for t in tests)
    totals = [float(r.get("score", 0)) for k, r in results.items() if k not in errors]
    mean = sum(totals) / len(totals) if totals else 0.0
    parts = [p for p in rubric.parts if any(t.part == p for t in tests)]
    out: list[Any] = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{esc(rubric.title)}: batch report</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(rubric.title)}</h1>",
        f"<p id=summary>{len(found.entries)} submissions; {len(totals)} graded; mean "
        f"{mean:.1f} / {top:g}; {len(errors) + len(problems)} problem(s).</p>",
        "<h2>Scores</h2>", histogram_svg(totals, top),
        "<h2>Tests: how many submissions passed each</h2>",
        '<table id=tests><tr><th>#</th><th>test</th><th>points</th><th>passed</th>'
        '<th>pass rate</th></tr>', *_test_rows(results, rubric, tests), "</table>"]
    if errors or problems:
        out += ["<h2 id=problems-title>Problems</h2><ul id=problems>"]
        out += [f'<li class=error id="problem-{esc(k)}"><b>{esc(k)}</b>: {esc(v)}</li>'
                for k, v in sorted(errors.items())]
        out += [f'<li class=error>{esc(why)}</li>' for _, why in problems]
        out += ["</ul>"]
    if reviews:
        out += ["<h2 id=review-title>To read</h2><p>Code in these submissions' parts that no "
                "VMM needs: the machine's own interpreter or firmware, the grader, the test "
                "frameworks, code made at run time. The tests cannot tell it from the "
                "student's work (README, &ldquo;What the part tests rest on&rdquo;); nothing "
                "here is scored.</p><ul id=review>"]
        # one line a submission, its most telling finding; the rest folded under it
        out += [f'<li id="review-{esc(k)}"><details><summary><b>{esc(k)}</b>: '
                f'<code>{esc(lines[0])}</code>'
                + (f" and {len(lines) - 1} more" if len(lines) > 1 else "") + "</summary><ul>"
                + "".join(f"<li><code>{esc(line)}</code></li>" for line in lines)
                + "</ul></details></li>" for k, lines in sorted(reviews.items())]
        out += ["</ul>"]
    # each name links to the student's feedback page; the table scrolls sideways on its own
    # when the parts are many, so the page keeps its width
    out += ["<h2>Students</h2><div class=wide><table id=students><tr><th>name</th><th>SID</th>"
            "<th>email</th><th class=num>total</th>"
            + "".join(f"<th class=num>{esc(p)}</th>" for p in parts)
            + "<th>feedback</th></tr>"]
    for e in found.entries:
        r = results.get(e.key)
        scores = part_scores(r, rubric) if r else {}
        for s in e.submitters:
            cells = "".join(f'<td class="num">{scores.get(p, 0):g}</td>' if r else "<td></td>"
                            for p in parts)
            total = f"{float(r.get('score', 0)):g}" if r else ""
            page = f"students/{esc(e.key)}/feedback"
            name = (f'<a href="{page}.html">{esc(s.name or e.key)}</a>' if r
                    else esc(s.name or e.key))
            # why it was not graded is a paragraph: under Problems, linked, not in the row
            link = (f'<a href="{page}.html">page</a> · <a href="{page}.md">Markdown</a>' if r
                    else f'<a class=error href="#problem-{esc(e.key)}">not graded: why</a>'
                    if e.key in errors else '<span class=muted>not graded yet</span>')
            if r and reviews and e.key in reviews:
                link += f' · <a class=review href="#review-{esc(e.key)}">to read</a>'
            out.append(f'<tr class=student data-sid="{esc(s.sid)}"><td>{name}</td>'
                       f'<td>{esc(s.sid)}</td><td>{esc(s.email)}</td>'
                       f'<td class="num"><b>{total}</b></td>{cells}<td>{link}</td></tr>')
    out += ["</table></div></body></html>\n"]
    write_atomic(path, "\n".join(out))
