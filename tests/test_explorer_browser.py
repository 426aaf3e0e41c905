"""The explorer page in a real headless browser: Debian's chromium driven by Playwright.

Type a title, pick it from the suggestions, see the related titles, click one, see why.
The screenshot is written to test-artifacts/explorer.png (git-ignored). `make test`
installs chromium when /usr/bin/chromium is missing; without it this test fails, loudly.
"""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from handmade import PLANTED, RARE, build_handmade_model, make_app

pytestmark = pytest.mark.system

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app = make_app(build_handmade_model(tmp_path_factory.mktemp("handmade-browser") / "m"))
    srv = make_server("127.0.0.1", 0, app, threaded=True)        # port 0: a free port
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (installs Debian's chromium) "
                    "or `apt-get install -y chromium`", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (make install)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_type_pick_click_and_see_why(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))

    page.goto(server + "/")
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
    page.locator("#why-x .tok").first.wait_for(timeout=10_000)
    assert page.locator("#why .carrier").inner_text() == f"[{RARE}]"
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
