"""The outlier scan as one self-contained HTML file (no network, no external assets).

    html = render_report(find_outliers(model, top=100))
    Path("report.html").write_text(html, encoding="utf-8")

A summary, then the flagged pairs grouped by their query title: a sortable table with one
row per title (how many suspicious neighbours, the worst suspicion, the reason), and per
title a collapsed <details> entry with its flagged neighbours and, per pair, two bar charts
(CSS bars) of how much of the score each token carries, for the title's tokens and the
neighbour's. A little inline JavaScript sorts the tables and opens the entry a link points
into. Figures are written as words and rounded numbers (never True/None/nan). Every text
from the data is escaped, and ":" and "/" are written as character references so that no
URL-like text (http://...) appears in the file.
"""
from __future__ import annotations

import html
import math

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em;margin:.2em 0}
.cards{display:flex;flex-wrap:wrap;gap:.7em}.card{border:1px solid #ccd;border-radius:6px;padding:.5em .8em}
.card b{display:block;font-size:1.4em}table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e3e8;padding:.25em .4em;text-align:left;vertical-align:top}
th.sort{cursor:pointer;user-select:none;background:#f3f3f7}th.sort:after{content:" \\2195";color:#999}
th.sort[data-dir=asc]:after{content:" \\2191";color:#333}th.sort[data-dir=desc]:after{content:" \\2193";color:#333}
td.n{text-align:right;font-variant-numeric:tabular-nums}.flag{display:inline-block;border-radius:3px;
padding:0 .3em;margin:0 .2em .1em 0;font-size:.85em;background:#fde2e1;color:#8a1c14}
.flag.rare_token_match{background:#fff0c2;color:#6b4a00}.cats{color:#666;font-size:.9em}
details{border:1px solid #ddd;border-radius:6px;margin:.5em 0}details>summary{cursor:pointer;padding:.4em .8em}
details[open]>summary{border-bottom:1px solid #eee;background:#fafafc}.body{padding:.4em 1em .8em}
details.pair{margin:.6em 0}.pair .body p{margin:.3em 0}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}
.tok{display:grid;grid-template-columns:9em 5.5em 1fr 4.5em;gap:.4em;align-items:center;font-size:.9em}
.tok .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-family:monospace}
.bar{display:grid;grid-template-columns:1fr 2fr;height:.9em;background:#f6f6f9}
.bar .l{display:flex;justify-content:flex-end}.bar i{display:block;height:100%}
.bar .l i{background:#9bb}.bar .r i{background:#4a7bd0}.rare .bar .r i{background:#d9822b}
.rare .name:after{content:" rare";color:#d9822b;font-family:system-ui;font-size:.8em}
.muted{color:#777}.tools button{margin-right:.5em}summary .reason{color:#555}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.tHead.querySelectorAll('th.sort').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1, num = th.classList.contains('num');
      t.tHead.querySelectorAll('th.sort').forEach(function(h){ delete h.dataset.dir; });
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (num) return dir * (parseFloat(x) - parseFloat(y));
        return dir * x.localeCompare(y);
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
function openTo(id){
  var el = document.getElementById(id);
  for (var d = el; d; d = d.parentElement) if (d.tagName === 'DETAILS') d.open = true;
}
document.addEventListener('click', function(ev){
  var a = ev.target.closest('a[href^="#"]');
  if (a) openTo(a.getAttribute('href').slice(1));
  var b = ev.target.closest('button[data-open]');
  if (b) document.querySelectorAll('details.group').forEach(function(d){ d.open = b.dataset.open === '1'; });
});
if (location.hash) openTo(location.hash.slice(1));
"""


def esc(value: object) -> str:
    """HTML-escaped text; ':' and '/' as character references (no URL-like text in the file)."""
    return html.escape(str(value), quote=True).replace(":", "&#58;").replace("/", "&#47;")


def fmt(x: float | None, digits: int = 3) -> str:
    """A rounded figure; "–" for a missing or undefined one (None, nan)."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def on_off(value: object) -> str:
    return "not recorded" if value is None else ("on" if value else "off")


def cell(text: str, sort_value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    if sort_value is None or (isinstance(sort_value, float) and math.isnan(sort_value)):
        sort_value = -1
    return f'<td{attr} data-v="{esc(sort_value)}">{text}</td>'


def flags_html(flags: list[str]) -> str:
    return "".join(f'<span class="flag {esc(f)}">{esc(f.replace("_", " "))}</span>' for f in flags)


def carrier_words(c: dict) -> str:
    """The token carrying a pair: '[runway] (rare: 1 labelled show, title side, −0.67)'."""
    shows = f'{c["count"]:,} labelled show{"" if c["count"] == 1 else "s"}'
    side = "title" if c["side"] == "title" else "neighbour"
    return f'{c["token"]} ({"rare" if c["rare"] else "not rare"}: {shows}, {side} side, drop {fmt(c["drop"], 2)})'


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


def shared_words(e: dict) -> str:
    shared = ", ".join(e["shared_informative_categories"]) or "none"
    broad = [c for c in e["shared_categories"] if c not in e["shared_informative_categories"]]
    return shared + (f" (broad: {', '.join(broad)})" if broad else "")


def pair_section(n: int, e: dict) -> str:
    """One pair's explanation, collapsed: its numbers, then the two token charts."""
    toks = e["tokens"]["title"] + e["tokens"]["neighbor"]
    scale = max([abs(t["drop"]) for t in toks] + [e["score"], 1e-9])
    title, nb = esc(e["title"]["text"]), esc(e["neighbor"]["text"])
    return (f'<details class="pair" id="pair-{n}"><summary>why #{n}: token contributions, {title} → {nb}'
            f' <span class="muted">(score {fmt(e["score"])})</span></summary><div class="body">'
            f'<p>score {fmt(e["score"])} · suspicion {fmt(e.get("suspicion"))} · rank {e.get("rank", "–")} '
            f'· {flags_html(e["flags"])} · shared categories: {esc(shared_words(e))}<br>'
            f'<span class="cats">{title}: {esc(", ".join(e["title"]["categories"]) or "none")}'
            f' — {nb}: {esc(", ".join(e["neighbor"]["categories"]) or "none")}</span><br>'
            f'carried most by <b>{esc(e["carrier"]["token"])}</b> ({esc(e["carrier"]["side"])}, '
            f'{"rare, " if e["carrier"]["rare"] else ""}seen in {e["carrier"]["count"]:,} labelled training '
            f'shows): without it the score drops by {fmt(e["carrier"]["drop"])}</p>'
            f'<div class="charts"><div><h3>tokens of the title</h3>{token_chart(e["tokens"]["title"], scale)}</div>'
            f'<div><h3>tokens of the neighbour</h3>{token_chart(e["tokens"]["neighbor"], scale)}</div></div>'
            "</div></details>")


def group_pairs(items: list[dict]) -> list[list[tuple[int, dict]]]:
    """The pairs (numbered 1.. in suspicion order) grouped by query title, worst group first."""
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for n, e in enumerate(items, 1):
        groups.setdefault((e["title"]["id"], e["title"]["text"]), []).append((n, e))
    return sorted(groups.values(), key=lambda g: (-max(e.get("suspicion") or 0.0 for _, e in g), g[0][0]))


def group_reason(pairs: list[tuple[int, dict]]) -> str:
    """Why a title is listed: its flags with counts, and what carries its worst pair."""
    counts: dict[str, int] = {}
    for _, e in pairs:
        for f in e["flags"]:
            counts[f] = counts.get(f, 0) + 1
    flags = ", ".join(f'{f.replace("_", " ")} ×{c}' for f, c in counts.items()) or "no flag"
    return f'{flags}; worst carried by {carrier_words(pairs[0][1]["carrier"])}'


def worst(pairs: list[tuple[int, dict]]) -> float:
    return max(e.get("suspicion") or 0.0 for _, e in pairs)


def group_table(groups: list[list[tuple[int, dict]]]) -> str:
    rows = []
    for g, pairs in enumerate(groups, 1):
        title = pairs[0][1]["title"]["text"]
        rows.append("<tr>" + cell(f'<a href="#group-{g}">{esc(title)}</a>', title)
                    + cell(str(len(pairs)), len(pairs), "n") + cell(fmt(worst(pairs)), worst(pairs), "n")
                    + cell(esc(group_reason(pairs)), group_reason(pairs)) + "</tr>")
    return table(["title", "suspicious neighbours", "worst suspicion", "reason"], rows, numeric=(1, 2),
                 table_id="groups")


def neighbour_table(pairs: list[tuple[int, dict]]) -> str:
    head = ["#", "neighbour", "rank", "score", "suspicion", "flags", "carried by", "rare-token share",
            "shared categories"]
    rows = []
    for n, e in pairs:
        c = e["carrier"]
        rows.append("<tr>" + cell(str(n), n, "n") + cell(f'<a href="#pair-{n}">{esc(e["neighbor"]["text"])}</a>',
                                                         e["neighbor"]["text"])
                    + cell(str(e.get("rank", "–")), e.get("rank", 0), "n")
                    + cell(fmt(e["score"]), e["score"], "n") + cell(fmt(e.get("suspicion")), e.get("suspicion"), "n")
                    + cell(flags_html(e["flags"]), " ".join(e["flags"]))
                    + cell(esc(carrier_words(c)), c["token"]) + cell(fmt(e["collapse"], 2), e["collapse"], "n")
                    + cell(esc(shared_words(e)), shared_words(e)) + "</tr>")
    return table(head, rows, numeric=(0, 2, 3, 4, 7))


def group_section(g: int, pairs: list[tuple[int, dict]]) -> str:
    """One query title: a collapsed entry with its flagged neighbours and their explanations."""
    t = pairs[0][1]["title"]
    many = "s" if len(pairs) != 1 else ""
    return (f'<details class="group" id="group-{g}"><summary><b>{esc(t["text"])}</b> · {len(pairs)} '
            f'suspicious neighbour{many} · worst suspicion {fmt(worst(pairs))} · '
            f'<span class="reason">{esc(group_reason(pairs))}</span></summary><div class="body">'
            f'<p class="cats">categories: {esc(", ".join(t["categories"]) or "none")} · off-category share '
            f'of its list {fmt(pairs[0][1].get("list_share"), 2)}</p>{neighbour_table(pairs)}'
            + "".join(pair_section(n, e) for n, e in pairs) + "</div></details>")


def table(head: list[str], rows: list[str], numeric: tuple[int, ...] = (), table_id: str = "") -> str:
    ths = "".join(f'<th class="sort{" num" if i in numeric else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join(rows) or f'<tr><td colspan="{len(head)}" class="muted">nothing flagged</td></tr>'
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return f'<table class="sortable"{tid}><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'


def titles_table(titles: list[dict]) -> str:
    rows = ["<tr>" + cell(esc(t["title"]), t["title"]) + cell(esc(", ".join(t["categories"][:4])), "")
            + cell(fmt(t["share"], 2), t["share"], "n") + cell(str(t["labelled_neighbors"]), t["labelled_neighbors"], "n")
            + cell(esc(" · ".join(t["neighbors"])), "") + "</tr>" for t in titles]
    return table(["title", "categories", "off-category share", "labelled neighbours", "first neighbours"], rows,
                 numeric=(2, 3))


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


def header(scan: dict) -> str:
    m, cfg = scan["model"], scan["config"]
    version = esc(m["version"] or "without a version")
    return (f'<h1>Outlier rankings of model {version}</h1>\n<p class="muted">{esc(m["path"])} · '
            f'{m["n_shows"]:,} shows · inverse-frequency scaling {on_off(m["inv_freq"])} · k = {scan["k"]} · '
            f'a token is rare when at most {cfg["rare_max_count"]} labelled training '
            f'show{"" if cfg["rare_max_count"] == 1 else "s"} use it · a match collapses when one rare token '
            f'carries at least {cfg["collapse_share"]:.0%} of its score</p>')


def render_report(scan: dict) -> str:
    items = scan["outliers"]
    groups = group_pairs(items)
    weights = " + ".join(f'{w:g} × {esc(k.replace("_", " "))}' for k, w in scan["weights"].items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>epgembed outliers — {esc(scan["model"]["version"] or "without a version")}</title><style>{CSS}</style></head>
<body>{header(scan)}
<h2>Summary</h2>{summary_cards(scan)}
<h2>Titles with suspicious neighbours</h2>
<p class="muted">The {len(items)} most suspicious pairs, grouped by title ({len(groups)} titles).
suspicion = max(score, 0) × ({weights}). Click a column to sort, a title to see its neighbours and why.</p>
{group_table(groups)}
<p class="tools"><button type="button" data-open="1">expand all</button><button type="button" data-open="0">collapse all</button></p>
<p class="muted">In "why", each bar is the drop of the pair's score when that token is left out
(orange: a rare token; grey, to the left: the score rises without it). ×N is how many
labelled training shows use the token; "ctx": a description word (lower weight).</p>
{"".join(group_section(g, pairs) for g, pairs in enumerate(groups, 1))}
<h2>Titles whose neighbour list disagrees with their categories</h2>
<details class="titles"><summary>{len(scan["titles"])} titles, worst first</summary><div class="body">
{titles_table(scan["titles"])}</div></details>
<script>{JS}</script></body></html>
"""
