"""What the nightly tests share: the real daily dumps reduced to every fourth channel, a
small config, and checks of a models root (conftest.py runs the five nights once a session).

Inputs are the real daily dumps of ../shared/data/epg-daily/de_magenta reduced to every
fourth channel (written into tmp_path), trained with a small config so the tests are quick.
"""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from epgembed import registry
from epgembed.query.load import load_model
from epgembed.config import Config
from epgembed.nightly import history
from epgembed.nightly.gates import NightlyConfig

DAILY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "epg-daily" / "de_magenta"
NIGHTS = ["2022-07-21", "2022-07-22", "2022-07-23", "2022-07-24", "2022-07-25"]
# The start of a script run as `python -c SCRIPT KILL_AT ...`: its os.rename and os.replace
# record every call in `calls` and SIGKILL the process at call number KILL_AT (0: never).
KILLING_RENAMES = r"""
import json, os, signal, sys
kill_at, calls = int(sys.argv[1]), []

def killing(real):
    def rename(src, dst, *args, **kwargs):
        calls.append([os.fspath(src), os.fspath(dst)])
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)
    return rename

os.rename, os.replace = killing(os.rename), killing(os.replace)
"""
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


def counted_renames(run: Callable[[int, Path, Path], subprocess.CompletedProcess], base: Path,
                    tmp_path: Path) -> list[list[str]]:
    """The renames of one whole run that kills nothing, `run(0, root, log)` (a KILLING_RENAMES
    script writing {"status", "renames"} to `log`), on a copy of the root `base`."""
    counting = tmp_path / "count"
    shutil.copytree(base, counting, symlinks=True)
    done = run(0, counting, tmp_path / "count.json")
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads((tmp_path / "count.json").read_text())
    assert log["status"] == "published", log
    return log["renames"]


def killed_at(run: Callable[[int, Path, Path], subprocess.CompletedProcess], n: int, base: Path,
              tmp_path: Path, renames: list) -> Path:
    """A copy of the root `base` after `run` was killed at its n-th rename."""
    root = tmp_path / f"kill-{n}"
    shutil.copytree(base, root, symlinks=True)
    killed = run(n, root, tmp_path / f"kill-{n}.json")
    assert killed.returncode == -9, (n, renames[n - 1], killed.stderr[-2000:])
    return root
