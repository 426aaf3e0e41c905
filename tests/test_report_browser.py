"""The outlier report in a real headless browser: Debian's chromium driven by Playwright.

The report of the hand-made model (50 pairs, 8 neighbours per title) is opened as a file:
the entries per title start collapsed and the page is short; a click on a title's summary
shows its neighbours and the reason; a click on a column header re-sorts the titles. The
screenshot is written to test-artifacts/outliers.png (git-ignored); docs/outliers.png is
the same report of a real dump. Without /usr/bin/chromium this test fails, loudly.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from epgembed.query.load import load_model
from epgembed.inspect.outliers import find_outliers
from epgembed.inspect.report import render_report
from handmade import PLANTED, RARE, build_handmade_model

pytestmark = pytest.mark.system

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    model = load_model(build_handmade_model(tmp_path_factory.mktemp("handmade-report") / "m"))
    return find_outliers(model, top=50, k=8)


@pytest.fixture(scope="module")
def report(scan, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "outliers.html"
    path.write_text(render_report(scan), encoding="utf-8")
    return path


def column(page, col: int) -> list[str]:
    return page.eval_on_selector_all("#groups tbody tr", f"rs => rs.map(r => r.cells[{col}].dataset.v)")


def test_collapsed_expand_sort(scan, report, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())

    titles = list(dict.fromkeys(e["title"]["text"] for e in scan["outliers"]))
    groups = page.locator("details.group")
    assert groups.count() == len(titles) and len(titles) < len(scan["outliers"])
    assert page.eval_on_selector_all("details", "ds => ds.filter(d => d.open).length") == 0
    assert not page.locator(".tok").first.is_visible()           # the charts are inside the entries
    collapsed = page.evaluate("document.body.scrollHeight")
    assert collapsed < 3500, collapsed                            # one line per title, not 50 charts

    first = groups.first                                          # the planted pair's title
    assert not first.locator("table").is_visible()
    first.locator("summary").first.click()
    assert first.evaluate("d => d.open") and first.locator("table").is_visible()
    mine = [e for e in scan["outliers"] if e["title"]["text"] == titles[0]]
    rows = first.locator("table tbody tr")
    assert titles[0] == PLANTED[0] and rows.count() == len(mine) >= 2
    assert PLANTED[1] in first.locator("table").inner_text()
    reason = first.locator("summary .reason").first.inner_text()
    assert "no shared category" in reason and f"[{RARE}] (rare" in reason
    assert f"[{RARE}] (rare" in rows.first.inner_text()            # per neighbour: what carries it
    first.locator("table a", has_text=PLANTED[1]).click()         # the neighbour's why opens
    rare_bar = first.locator("details.pair[open] .tok.rare").first
    assert rare_bar.is_visible() and f"[{RARE}]" in rare_bar.inner_text()
    assert page.evaluate("document.body.scrollHeight") > collapsed

    initial = [int(v) for v in column(page, 1)]
    worst = [float(v) for v in column(page, 2)]
    assert worst == sorted(worst, reverse=True)
    page.locator("#groups th", has_text="worst suspicion").click()
    assert [float(v) for v in column(page, 2)] == sorted(worst)
    page.locator("#groups th", has_text="worst suspicion").click()
    assert [float(v) for v in column(page, 2)] == sorted(worst, reverse=True)
    page.locator("#groups th", has_text="suspicious neighbours").click()
    counts = [int(v) for v in column(page, 1)]
    assert counts == sorted(counts) and counts != initial and sorted(initial) == counts
    page.locator("#groups th", has_text="title").click()
    assert column(page, 0) == sorted(titles, key=str.casefold)
    page.locator("#groups").get_by_role("link", name=titles[-1], exact=True).click()
    assert page.locator(f"#group-{len(titles)}").evaluate("d => d.open")   # a title's link opens its entry

    shot = ARTIFACTS / "outliers.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not problems, problems                                 # no CSP violation, no script error
    assert requests == [report.as_uri()], requests                # one file, nothing fetched
    page.close()
