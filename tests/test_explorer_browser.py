"""The explorer page in a real headless browser: Debian's chromium driven by Playwright.

The serving model's version, age and counts in the header; type a title, pick it from the
suggestions, see the related titles, click one, see why: the words of both titles
highlighted by their share of the score, what the guide features carried (a model with
features), the tokenizer pieces behind a disclosure. The screenshot is written to
test-artifacts/explorer.png (git-ignored). `make test` installs chromium when
/usr/bin/chromium is missing; without it this test fails, loudly.
"""
from __future__ import annotations

import re
import shutil
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from epgembed.query.load import load_model
from handmade import PLANTED, RARE, build_handmade_model, make_app

pytestmark = pytest.mark.system

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@contextmanager
def serving(model_dir: Path):
    srv = make_server("127.0.0.1", 0, make_app(model_dir), threaded=True)   # port 0: a free port
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def handmade_dir(tmp_path_factory) -> Path:
    return build_handmade_model(tmp_path_factory.mktemp("handmade-browser") / "m")


@pytest.fixture(scope="module")
def server(handmade_dir):
    with serving(handmade_dir) as url:
        yield url


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):           # a trained model: pieces and guide features
    with serving(tiny_model_dir) as url:
        yield url


def watched_page(browser, problems: list[str], requests: list[str] | None = None):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    if requests is not None:
        page.on("request", lambda r: requests.append(r.url))
    return page


def alpha(locator) -> float:
    """The opacity of an element's background colour (0: none)."""
    color = locator.evaluate("e => getComputedStyle(e).backgroundColor")
    parts = re.findall(r"[\d.]+", color)
    return float(parts[3]) if len(parts) == 4 else (1.0 if parts and color.startswith("rgb(") else 0.0)


def words_of_line(page, side: str) -> list[str]:
    return page.locator(f"#why-words .words-line.{side}:not(.context) .w").all_inner_texts()


def check_model_line(page, model_dir: Path) -> None:
    model = load_model(model_dir)
    page.locator("#model-status .version").wait_for(timeout=10_000)
    assert page.locator("#model-status .version").inner_text() == model.version
    assert re.fullmatch(r"built (just now|\d+ min ago)", page.locator("#model-status .age").inner_text())
    assert page.locator("#model-status .counts").inner_text().startswith(f"{len(model)} shows (")


def check_readable_why(page) -> None:
    """Both titles' words, the rare word darkest; the tokenizer pieces hidden until asked for."""
    page.locator("#why-words .w").first.wait_for(timeout=10_000)
    assert words_of_line(page, "title") == ["Zorblax", "Puppy"]          # as written, not as tokens
    assert words_of_line(page, "neighbor") == ["Zorblax", "Kitchen"]
    rare, other = (page.locator("#why-words .words-line.title .w", has_text=w) for w in ("Zorblax", "Puppy"))
    assert float(rare.get_attribute("data-share")) > 0.5 and alpha(rare) > 0.5
    assert alpha(rare) > alpha(other) + 0.2
    assert not page.locator("#why-parts").is_visible()                 # no features, no description
    assert not page.locator("#why-x .tok").first.is_visible()           # pieces: on demand
    assert page.locator("#why-pieces").get_attribute("open") is None
    page.locator("#why-pieces summary").click()
    page.locator("#why-x .tok").first.wait_for(timeout=10_000)


def test_type_pick_click_and_see_why(server, handmade_dir, browser, tmp_path):
    problems: list[str] = []
    requests: list[str] = []
    page = watched_page(browser, problems, requests)

    page.goto(server + "/")
    check_model_line(page, handmade_dir)
    page.fill("#q", "zorb")                                   # catalog lookup as you type
    suggestion = page.locator("#suggestions li", has_text=PLANTED[0])
    suggestion.wait_for(timeout=10_000)
    suggestion.click()

    first = page.locator("#related li").first                 # related titles, best first
    first.wait_for(timeout=10_000)
    assert PLANTED[1] in first.inner_text()
    assert "cooking" in first.inner_text()                    # its categories are shown
    assert float(first.locator(".score").inner_text()) > 0.8
    assert page.locator("#related li").count() >= 5

    first.click()                                             # why?
    check_readable_why(page)
    assert page.locator("#why .carrier").inner_text() == f"[{RARE}]"
    assert re.search(f"carried most by the word “{RARE}” of “({PLANTED[0]}|{PLANTED[1]})”",
                     page.locator("#why-summary").inner_text())
    assert "no shared category" in page.locator("#why-summary").inner_text()
    rare_bar = page.locator("#why-x .tok.rare").first
    assert f"[{RARE}]" in rare_bar.inner_text()
    width = rare_bar.locator(".r i").evaluate("e => e.getBoundingClientRect().width")
    other = page.locator("#why-x .tok:not(.rare) .r i").first.evaluate("e => e.getBoundingClientRect().width")
    assert width > 5 * max(other, 1.0)                        # the rare token's bar dominates

    page.fill("#q", "Zorblax Dragon Night")                   # never seen: embedded from tokens
    page.press("#q", "Enter")
    page.locator("#status", has_text="Not in the catalog").wait_for(timeout=10_000)
    page.locator("#related li").first.click()
    page.locator("#why-y .tok").first.wait_for(timeout=10_000)
    page.fill("#q", "Zorblax Puppy")
    page.press("#q", "Enter")
    page.locator("#related li").first.wait_for(timeout=10_000)
    page.locator("#related li").first.click()
    page.locator("#why-x .tok.rare").first.wait_for(timeout=10_000)

    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "explorer.png")
    assert shot.stat().st_size > 10_000
    assert not problems, problems                             # no CSP violation, no script error
    assert requests and all(u.startswith(server + "/") for u in requests), requests
    assert any("/v1/titles/" in u and "/explain?neighbor=" in u for u in requests)   # known: by ids
    page.close()


@pytest.mark.parametrize("age, words", [(timedelta(minutes=7, seconds=5), "built 7 min ago"),
                                        (timedelta(hours=3, minutes=5), "built 3 h ago"),
                                        (timedelta(days=2, hours=1), "built 2 days ago")])
def test_model_age_in_words(server, browser, age, words):
    """The age is computed in the page from `created` (UTC): here a /v1/model answer whose
    `created` lies `age` in the past."""
    created = (datetime.now(timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%SZ")

    def older(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "created": created})

    problems: list[str] = []
    page = watched_page(browser, problems)
    page.route("**/v1/model", older)
    page.goto(server + "/")
    page.locator("#model-status .age", has_text=words).wait_for(timeout=10_000)
    assert page.locator("#model-status .age").get_attribute("title") == f"created {created} (UTC)"
    assert not problems, problems
    page.close()


def test_what_the_guide_features_carried(tiny_server, browser):
    """A trained model's bag holds pieces, whole words and guide features: the panel says
    what each part carried, with bars scaled to the largest and none invisible."""
    problems: list[str] = []
    page = watched_page(browser, problems)
    page.goto(tiny_server + "/")
    page.fill("#q", "Baking Kitchen")
    page.press("#q", "Enter")
    page.locator("#related li").first.wait_for(timeout=10_000)
    with page.expect_response(lambda r: "/explain" in r.url) as answer:
        page.locator("#related li").first.click()
    e = answer.value.json()
    page.locator("#why-parts .part").first.wait_for(timeout=10_000)
    assert words_of_line(page, "title") == ["Baking", "Kitchen"]
    assert words_of_line(page, "neighbor") == e["neighbor"]["text"].split()
    text = page.locator("#why-parts-text").inner_text()
    assert text.startswith(f"Of the score {e['score']:.3f}, most came from the ")
    rows = page.locator("#why-parts .part")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.part)")) == sorted(p["part"] for p in e["carried_by"])
    assert {"channel", "time slot"} <= set(page.locator("#why-parts .part .name").all_inner_texts())
    widths = page.locator("#why-parts .pbar i").evaluate_all("is => is.map(i => i.getBoundingClientRect().width)")
    track = page.locator("#why-parts .pbar").first.evaluate("e => e.getBoundingClientRect().width")
    assert max(widths) == pytest.approx(track, abs=1) and min(widths) >= 3     # scaled; small ones visible
    feature_rows = page.locator("#why-x .tok.feature")
    assert feature_rows.count() > 0 and not feature_rows.first.is_visible()
    page.locator("#why-pieces summary").click()
    assert feature_rows.first.is_visible() and feature_rows.first.inner_text().startswith("<")
    assert not problems, problems
    page.close()


@pytest.fixture(scope="module")
def series_server(tmp_path_factory):
    from guide import TINY_CONFIG, write_xmltv
    from epgembed.build.pipeline import train_model
    from test_series_answers import guide
    tmp = tmp_path_factory.mktemp("series-browser")
    cfg = TINY_CONFIG.replace(catalog={"max_category_share": 0.9})
    train_model([write_xmltv(tmp / "guide.xml", guide())], tmp / "model", cfg, threads=1)
    with serving(tmp / "model") as url:
        yield url


def test_each_series_once_with_its_count_expanded_on_a_click(series_server, browser):
    problems: list[str] = []
    page = watched_page(browser, problems)
    page.goto(series_server + "/")
    page.fill("#q", "Echo Investigates")
    page.press("#q", "Enter")
    alpha = page.locator("#related > li", has_text="Alpha Files")
    alpha.first.wait_for(timeout=10_000)
    assert alpha.count() == 1                                   # the 20-episode show: one row
    more = alpha.locator(":scope > button.more")
    assert more.inner_text() == "+19 more"
    more.click()
    episodes = alpha.locator("ul.series > li")
    episodes.nth(18).wait_for(timeout=10_000)
    assert episodes.count() == 19
    assert all(t.startswith("Alpha Files") for t in alpha.locator("ul.series > li .title").all_inner_texts())
    more.click()                                                 # and folded again
    assert alpha.locator("ul.series").count() == 0 and more.inner_text() == "+19 more"
    assert not problems, problems
    page.close()
