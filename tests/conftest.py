"""Shared fixtures: a tiny hand-made XMLTV dump and two models trained on it once per session,
and a headless chromium (helpers that are not fixtures live in service_util.py and polling.py)."""
from __future__ import annotations

import gzip
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from epgembed.config import Config

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))          # deploy/local_stack.py, as bench/replicas.py imports it

# Four genres whose titles share words, so a trained model has a known right answer.
GENRES = {
    "sport": ["Football Tonight", "Football Weekly", "Football Highlights", "Premier Football Live",
              "Tennis Tonight", "Tennis Weekly", "Golf Highlights", "Rugby Highlights",
              "Motorsport Weekly", "Cycling Highlights", "Sport Extra", "Boxing Tonight"],
    "news": ["News at Six", "Morning News", "Evening News", "World News Today", "News Hour",
             "Business News", "Weather and News", "Late News", "News Review", "Regional News",
             "Breaking News Tonight", "The News Desk"],
    "kids": ["Happy Puppy Friends", "Puppy Club", "Dragon Friends", "Little Dragon Tales",
             "Cartoon Club", "Cartoon Puppy", "Dragon Cartoon Hour", "Friends of the Forest",
             "Forest Cartoon Tales", "Little Puppy Tales", "Kids Club", "Tiny Dragon Friends"],
    "cooking": ["Kitchen Heroes", "Great Kitchen Battle", "Baking Kitchen", "Cooking with Anna",
                "Kitchen Nightmares Live", "Cooking Weekly", "Baking Masters", "The Cooking Show",
                "Family Kitchen", "Quick Cooking", "Baking at Home", "Kitchen Secrets"],
}


def programme_xml(title: str, categories: list[str], channel: str = "ch1",
                  start: str = "20260101060000 +0000", sub_title: str | None = None) -> str:
    cats = "".join(f"<category>{escape(c)}</category>" for c in categories)
    sub = f"<sub-title>{escape(sub_title)}</sub-title>" if sub_title else ""
    return (f'<programme start="{start}" stop="{start}" channel="{channel}">'
            f"<title>{escape(title)}</title>{sub}{cats}</programme>\n")


def write_xmltv(path: Path, programmes: list[str], gz: bool | None = None) -> Path:
    text = ('<?xml version="1.0" encoding="UTF-8"?>\n<tv>\n<channel id="ch1"><display-name>One'
            "</display-name></channel>\n" + "".join(programmes) + "</tv>\n")
    data = text.encode("utf-8")
    if gz or (gz is None and path.suffix == ".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def tiny_programmes() -> list[str]:
    out = []
    for genre, titles in GENRES.items():
        for i, title in enumerate(titles):
            for airing in range(2):
                cats = [genre.capitalize(), "Series"] if i % 3 else [genre]
                out.append(programme_xml(f"{title} S1 Ep. {airing + 1}" if i == 0 and airing else title, cats,
                                         channel=f"ch{airing + 1}"))
    out.append(programme_xml("Unlabelled Football Special", []))
    return out


TINY_CONFIG = Config().replace(train={"dim": 32, "epochs": 15, "min_examples": 0, "val_fraction": 0.0,
                                                      "lr": 0.2},
                               index={"n_trees": 10})


@pytest.fixture(scope="session")
def tiny_dump(tmp_path_factory) -> Path:
    return write_xmltv(tmp_path_factory.mktemp("dump") / "tiny.xml.gz", tiny_programmes())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dump) -> Path:
    from epgembed.pipeline import train_model
    out = tmp_path_factory.mktemp("model") / "tiny"
    train_model([tiny_dump], out, TINY_CONFIG, threads=1)
    return out


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory, tiny_dump) -> Path:
    """A second valid model (other seed -> other vectors -> other version)."""
    from epgembed.pipeline import train_model
    out = tmp_path_factory.mktemp("model_b") / "tiny_b"
    train_model([tiny_dump], out, TINY_CONFIG.with_seed(7), threads=1)
    return out


@pytest.fixture
def two_versions(tmp_path, tiny_model_dir, tiny_model_b) -> tuple[Path, str, str]:
    """A models root (tests/service_util.py) with the tiny model (older) and model b (current)."""
    from epgembed.artifact.registry import publish
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
    from epgembed.artifact import registry
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
