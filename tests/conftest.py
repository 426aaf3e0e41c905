"""Shared fixtures: a tiny hand-made XMLTV dump (tests/guide.py) and two models trained on it
once per session, the five real nights, and a headless chromium. Helpers that are not fixtures
live in their own modules (guide.py, service_util.py, nightly_util.py, polling.py); tests import
those, never this file. pyproject.toml's `pythonpath` puts tests/ and the repository on sys.path."""
from __future__ import annotations

from pathlib import Path

import pytest

from guide import TINY_CONFIG, tiny_programmes, write_xmltv


@pytest.fixture(scope="session")
def tiny_dump(tmp_path_factory) -> Path:
    return write_xmltv(tmp_path_factory.mktemp("dump") / "tiny.xml.gz", tiny_programmes())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dump) -> Path:
    from epgembed.build.pipeline import train_model
    out = tmp_path_factory.mktemp("model") / "tiny"
    train_model([tiny_dump], out, TINY_CONFIG, threads=1)
    return out


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory, tiny_dump) -> Path:
    """A second valid model (other seed -> other vectors -> other version)."""
    from epgembed.build.pipeline import train_model
    out = tmp_path_factory.mktemp("model_b") / "tiny_b"
    train_model([tiny_dump], out, TINY_CONFIG.with_seed(7), threads=1)
    return out


@pytest.fixture
def two_versions(tmp_path, tiny_model_dir, tiny_model_b) -> tuple[Path, str, str]:
    """A models root (tests/service_util.py) with the tiny model (older) and model b (current)."""
    from epgembed.registry import publish
    from service_util import make_root
    root = tmp_path / "root"
    a = make_root(root, tiny_model_dir)
    return root, a, publish(root, tiny_model_b, move=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """The CI machine's cores are shared: one torch thread avoids oversubscription stalls
    (modules that train in-process use it with `pytestmark`)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def daily_dumps(tmp_path_factory) -> list[Path]:
    """The five real daily dumps, every fourth channel (tests/nightly_util.py)."""
    from nightly_util import DAILY, NIGHTS, reduce_dump
    d = tmp_path_factory.mktemp("daily")
    return [reduce_dump(DAILY / f"{n}.xml.gz", d / f"{n}.xml.gz") for n in NIGHTS]


@pytest.fixture(scope="session")
def five_nights(tmp_path_factory, daily_dumps):
    """The five nights run in turn into one root; (root, results, current after each)."""
    import torch
    from epgembed import registry
    from epgembed.nightly.run import run_nightly
    from nightly_util import CFG, NCFG
    root = tmp_path_factory.mktemp("models") / "root"
    results, currents = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for dump in daily_dumps:
        results.append(run_nightly([dump], root, NCFG, CFG))
        currents.append(registry.current_version(root))
    torch.set_num_threads(threads)
    return root, results, currents


@pytest.fixture
def nightly_root(five_nights, tmp_path) -> Path:
    """A private copy of the five nights' root (the `current` symlink is relative)."""
    import shutil
    copy = tmp_path / "root"
    shutil.copytree(five_nights[0], copy, symlinks=True)
    return copy


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright (its own browser is not used); a
    missing chromium or playwright fails the test, loudly."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (installs Debian's chromium) "
                    "or `apt-get install -y chromium`", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (make install)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
