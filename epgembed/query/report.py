"""The outlier scan as one self-contained HTML file (no network, no external assets).

    html = render_report(find_outliers(model, top=100))
    Path("report.html").write_text(html, encoding="utf-8")

A summary, a sortable table of the most suspicious pairs (a little inline JavaScript), and
per pair two bar charts (CSS bars): how much of the score each token carries, for the
title's tokens and the neighbour's. Every text from the data is escaped, and ":" and "/"
are written as character references so that no URL-like text (http://...) appears in the file.
"""
from __future__ import annotations

import html

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em;margin:.2em 0}
.cards{display:flex;flex-wrap:wrap;gap:.7em}.card{border:1px solid #ccd;border-radius:6px;padding:.5em .8em}
.card b{display:block;font-size:1.4em}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e3e8;padding:.25em .4em;text-align:left;vertical-align:top}
th.sort{cursor:pointer;user-select:none;background:#f3f3f7}th.sort:after{content:" \\2195";color:#999}
td.n{text-align:right;font-variant-numeric:tabular-nums}.flag{display:inline-block;border-radius:3px;
padding:0 .3em;margin:0 .2em .1em 0;font-size:.85em;background:#fde2e1;color:#8a1c14}
.flag.rare_token_match{background:#fff0c2;color:#6b4a00}.cats{color:#666;font-size:.9em}
section.pair{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
.tok{display:grid;grid-template-columns:9em 5.5em 1fr 4.5em;gap:.4em;align-items:center;font-size:.9em}
.tok .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-family:monospace}
.bar{display:grid;grid-template-columns:1fr 2fr;height:.9em;background:#f6f6f9}
.bar .l{display:flex;justify-content:flex-end}.bar i{display:block;height:100%}
.bar .l i{background:#9bb}.bar .r i{background:#4a7bd0}.rare .bar .r i{background:#d9822b}
.rare .name:after{content:" rare";color:#d9822b;font-family:system-ui;font-size:.8em}
.muted{color:#777}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th.sort').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
        return dir * x.localeCompare(y);
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def esc(value: object) -> str:
    """HTML-escaped text; ':' and '/' as character references (no URL-like text in the file)."""
    return html.escape(str(value), quote=True).replace(":", "&#58;").replace("/", "&#47;")


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def cell(text: str, sort_value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<td{attr} data-v="{esc(sort_value)}">{text}</td>'


def flags_html(flags: list[str]) -> str:
    return "".join(f'<span class="flag {esc(f)}">{esc(f.replace("_", " "))}</span>' for f in flags)


def bar_widths(value: float, scale: float) -> tuple[float, float]:
    """(negative %, positive %) widths of a diverging bar; |value| / scale, capped at 100."""
    if scale <= 0:
        return 0.0, 0.0
    w = min(100.0, abs(value) / scale * 100.0)
    return (w, 0.0) if value < 0 else (0.0, w)


def token_chart(tokens: list[dict], scale: float, limit: int = 15) -> str:
    """Diverging bars of the tokens' drops: the `limit` largest |drop|, in title order."""
    keep = {t["position"] for t in sorted(tokens, key=lambda t: -abs(t["drop"]))[:limit]}
    rows = []
    for t in (t for t in tokens if t["position"] in keep):
        neg, pos = bar_widths(t["drop"], scale)
        cls = "tok rare" if t["rare"] else "tok"
        rows.append(f'<div class="{cls}" title="score without it {fmt(t["without"])}, share {fmt(t["share"])}">'
                    f'<span class="name">{esc(t["token"])}</span>'
                    f'<span class="muted">×{t["count"]}{" ctx" if t.get("weight", 1.0) < 1 else ""}</span>'
                    f'<span class="bar"><span class="l"><i style="width:{neg:.1f}%"></i></span>'
                    f'<span class="r"><i style="width:{pos:.1f}%"></i></span></span>'
                    f'<span class="n">{t["drop"]:+.3f}</span></div>')
    if len(tokens) > len(keep):
        rows.append(f'<div class="muted">… {len(tokens) - len(keep)} more tokens with smaller effects</div>')
    return "".join(rows)


def pair_section(n: int, e: dict) -> str:
    toks = e["tokens"]["title"] + e["tokens"]["neighbor"]
    scale = max([abs(t["drop"]) for t in toks] + [e["score"], 1e-9])
    shared = ", ".join(e["shared_informative_categories"]) or "none"
    broad = [c for c in e["shared_categories"] if c not in e["shared_informative_categories"]]
    shared += f" (broad: {', '.join(broad)})" if broad else ""
    return (f'<section class="pair" id="pair-{n}"><h3>{n}. {esc(e["title"]["text"])} → '
            f'{esc(e["neighbor"]["text"])}</h3>'
            f'<p>score {fmt(e["score"])} · suspicion {fmt(e.get("suspicion"))} · rank {e.get("rank", "–")} '
            f'· {flags_html(e["flags"])} · shared categories: {esc(shared)}<br>'
            f'<span class="cats">{esc(e["title"]["text"])}: {esc(", ".join(e["title"]["categories"]) or "none")}'
            f' — {esc(e["neighbor"]["text"])}: {esc(", ".join(e["neighbor"]["categories"]) or "none")}</span><br>'
            f'carried most by <b>{esc(e["carrier"]["token"])}</b> ({esc(e["carrier"]["side"])}, '
            f'seen in {e["carrier"]["count"]} training shows): without it the score drops by '
            f'{fmt(e["carrier"]["drop"])}</p>'
            f'<div class="charts"><div><h3>tokens of the title</h3>{token_chart(e["tokens"]["title"], scale)}</div>'
            f'<div><h3>tokens of the neighbour</h3>{token_chart(e["tokens"]["neighbor"], scale)}</div></div>'
            "</section>")


def outlier_table(items: list[dict]) -> str:
    head = ["#", "suspicion", "score", "title", "neighbour", "rank", "flags", "carried by", "collapse"]
    rows = []
    for n, e in enumerate(items, 1):
        c = e["carrier"]
        rows.append("<tr>" + cell(str(n), n, "n") + cell(fmt(e.get("suspicion")), e.get("suspicion", 0), "n")
                    + cell(fmt(e["score"]), e["score"], "n")
                    + cell(f'<a href="#pair-{n}">{esc(e["title"]["text"])}</a>', e["title"]["text"])
                    + cell(esc(e["neighbor"]["text"]), e["neighbor"]["text"])
                    + cell(str(e.get("rank", "–")), e.get("rank", 0), "n")
                    + cell(flags_html(e["flags"]), " ".join(e["flags"]))
                    + cell(f'{esc(c["token"])} <span class="muted">×{c["count"]}</span>', c["token"])
                    + cell(fmt(e["collapse"]), e["collapse"], "n") + "</tr>")
    return table(head, rows)


def table(head: list[str], rows: list[str]) -> str:
    ths = "".join(f'<th class="sort">{esc(h)}</th>' for h in head)
    body = "".join(rows) or f'<tr><td colspan="{len(head)}" class="muted">nothing flagged</td></tr>'
    return f'<table class="sortable"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'


def titles_table(titles: list[dict]) -> str:
    rows = ["<tr>" + cell(esc(t["title"]), t["title"]) + cell(esc(", ".join(t["categories"][:4])), "")
            + cell(fmt(t["share"], 2), t["share"], "n") + cell(str(t["labelled_neighbors"]), t["labelled_neighbors"], "n")
            + cell(esc(" · ".join(t["neighbors"])), "") + "</tr>" for t in titles]
    return table(["title", "categories", "off-category share", "labelled neighbours", "first neighbours"], rows)


def summary_cards(scan: dict) -> str:
    s, check = scan["summary"], scan["summary"]["check"]

    def share(key: str) -> str:
        v = check[key]["share_no_informative_category"]
        return "–" if v is None else f"{100 * v:.1f}%"

    cards = [("shows", f'{s["shows"]:,}'), ("pairs scanned", f'{s["pairs"]:,}'),
             ("flagged pairs", f'{s["flagged_pairs"]:,}'), ("no shared category", f'{s["no_shared_category"]:,}'),
             ("rare-token matches", f'{s["rare_token_match"]:,}'),
             ("titles whose list disagrees", f'{s["titles_disagreeing"]:,}'),
             ("flagged: no informative category", share("flagged")),
             ("rare-token matches: no informative category", share("rare_token_match")),
             ("all pairs: no informative category", share("all_pairs")),
             ("scan time", f'{scan["timings"]["total_s"]:.1f} s')]
    return '<div class="cards">' + "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>'
                                           for k, v in cards) + "</div>"


def render_report(scan: dict) -> str:
    m, cfg = scan["model"], scan["config"]
    items = scan["outliers"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>epgembed outliers — {esc(m["version"])}</title><style>{CSS}</style></head>
<body><h1>Outlier rankings of model {esc(m["version"])}</h1>
<p class="muted">{esc(m["path"])} · {m["n_shows"]:,} shows · inverse-frequency scaling {esc(m["inv_freq"])} ·
k = {scan["k"]} · a token is rare when at most {cfg["rare_max_count"]} labelled training shows use it ·
a match collapses when one rare token carries ≥ {cfg["collapse_share"]:.0%} of its score</p>
<h2>Summary</h2>{summary_cards(scan)}
<h2>Most suspicious pairs</h2>
<p class="muted">suspicion = max(score, 0) × ({' + '.join(f'{w} × {esc(k.replace("_", " "))}' for k, w in scan["weights"].items())}).
Click a column to sort, a title to see why.</p>
{outlier_table(items)}
<h2>Titles whose neighbour list disagrees with their categories</h2>{titles_table(scan["titles"])}
<h2>Why: token contributions</h2>
<p class="muted">Each bar is the drop of the pair's score when that token is left out
(orange: a rare token; grey, to the left: the score rises without it). ×N is how many
labelled training shows use the token; "ctx": a description word (lower weight).</p>
{"".join(pair_section(n, e) for n, e in enumerate(items, 1))}
<script>{JS}</script></body></html>
"""
