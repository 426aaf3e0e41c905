"""What the nightly tests share: the real daily dumps reduced to every fourth channel, a
small config, and checks of a models root (conftest.py runs the five nights once a session).

Inputs are the real daily dumps of ../shared/data/epg-daily/de_magenta reduced to every
fourth channel (written into tmp_path), trained with a small config so the tests are quick.
"""
from __future__ import annotations

import gzip
from pathlib import Path

from lxml import etree

from epgembed import registry
from epgembed.query.load import load_model
from epgembed.config import Config
from epgembed.nightly import history
from epgembed.nightly.gates import NightlyConfig

DAILY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "epg-daily" / "de_magenta"
NIGHTS = ["2022-07-21", "2022-07-22", "2022-07-23", "2022-07-24", "2022-07-25"]
CFG = Config().replace(train={"dim": 16, "epochs": 4, "min_examples": 0, "patience": 2}, index={"n_trees": 5})
NCFG = NightlyConfig(history_nights=3, keep=4)


def reduce_dump(src: Path, out: Path, every: int = 4) -> Path:
    """Every `every`-th channel (sorted by id) of a dump, as a gzipped XMLTV file."""
    with gzip.open(src, "rb") as f:
        root = etree.parse(f, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    keep = set(sorted({el.get("id") for el in root.iterchildren("channel")})[::every])
    for el in list(root):
        if (el.tag == "channel" and el.get("id") not in keep) or \
                (el.tag == "programme" and el.get("channel") not in keep):
            root.remove(el)
    out.write_bytes(gzip.compress(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), mtime=0))
    return out


def rewrite_dump(src: Path, out: Path, edit) -> Path:
    """`src` (gzipped XMLTV) with its text passed through `edit`, gzipped to `out`."""
    text = gzip.decompress(src.read_bytes()).decode("utf-8")
    out.write_bytes(gzip.compress(edit(text).encode("utf-8"), mtime=0))
    return out


def leftovers(root: Path) -> list[str]:
    hidden = [p.name for p in root.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    vdir = registry.versions_dir(root)
    return hidden + [f"versions/{p.name}" for p in vdir.iterdir() if p.name.startswith(".")]


def assert_current_valid(root: Path, expected: str) -> None:
    assert registry.current_version(root) == expected
    assert load_model(registry.current_dir(root)).version == expected  # what the service loads


def nights_of(root: Path) -> list[str]:
    return [n.isoformat() for n in history.committed_nights(root)]


def write_night(root: Path, night, programmes: list, meta: dict) -> Path:
    """Store a night's programmes and meta at once, as the nightly job does: staged, then committed."""
    return history.stage_night(root, night, programmes, meta).commit()
