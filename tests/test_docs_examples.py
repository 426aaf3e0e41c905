"""Every example in README.md and docs/*.md that shows a command's output is run here.

An example is a fenced block of `$ COMMAND` lines, each followed by what it prints. The
commands run against the sample model that `make run` serves (data/sample.xml.gz, default
config): `curl` through the service's app (Flask test client), `epgembed nightly` in-process
on nights cut from the sample guide. What must match: the shape (keys, list lengths, the
words of a line), `known` flags, catalog ids and titles, messages; what depends on training
is matched loosely (scores, which titles come back as related: they must be catalog titles
with the ids and categories shown), and so are version ids, dates, paths and figures in the
nightly lines. A `$` line with no runner here fails, so a new example cannot go unchecked.
"""
from __future__ import annotations

import gzip
import json
import re
import shlex
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from epgembed.cli.main import main
from epgembed.config import Config
from epgembed.gen.sample import write_sample
from service import ServiceConfig, create_app
from service.state import state

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SAMPLE = REPO / "data" / "sample.xml.gz"
VERSION = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
# the nightly examples' figures depend on training: a small model keeps the runs short
NIGHTLY_CONFIG = {"train": {"dim": 32, "epochs": 5, "min_examples": 0}, "index": {"n_trees": 10}}


def examples() -> list[tuple[str, int, str, str]]:
    """(doc, line, command, output) of every `$ command` in a fenced block of the docs."""
    found = []
    for doc in DOCS:
        fenced, current = False, None
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                if current:
                    found.append(current)
                current = None
            elif fenced and line.startswith("$ "):
                if current:
                    found.append(current)
                current = (doc.name, n, line[2:].strip(), "")
            elif fenced and current:
                current = (*current[:3], current[3] + line + "\n")
    return found


EXAMPLES = examples()


def example_id(example) -> str:
    return f"{example[0]}:{example[1]}"


def test_the_docs_have_examples_and_every_one_has_a_runner():
    kinds = [runner_of(command) for _, _, command, _ in EXAMPLES]
    assert kinds.count("curl") >= 5 and kinds.count("nightly") >= 3, EXAMPLES
    assert None not in kinds, [e[:3] for e, k in zip(EXAMPLES, kinds) if k is None]


def runner_of(command: str) -> str | None:
    words = shlex.split(command, comments=True)
    if words[:1] == ["curl"]:
        return "curl"
    if words[:2] == ["epgembed", "nightly"]:
        return "nightly"
    return None


# ---------------------------------------------------------------- curl: the service's answers
@pytest.fixture(scope="module")
def sample_model(tmp_path_factory) -> Path:
    from epgembed.build.pipeline import train_model
    out = tmp_path_factory.mktemp("sample") / "sample"
    train_model([SAMPLE], out, Config(), threads=1)
    return out


@pytest.fixture(scope="module")
def client(sample_model):
    app = create_app(ServiceConfig(models=sample_model, poll_seconds=0))
    yield app.test_client()
    state(app).holder.stop()


def curl(client, command: str):
    """The test client's answer (status, JSON) to a documented curl command line."""
    words = shlex.split(command, comments=True)[1:]
    data, headers, url = None, {}, None
    while words:
        word = words.pop(0)
        if word in ("-d", "--data"):
            data = words.pop(0)
        elif word in ("-H", "--header"):
            name, value = words.pop(0).split(":", 1)
            headers[name.strip()] = value.strip()
        elif word in ("-s", "--silent"):
            continue
        else:
            assert url is None and not word.startswith("-"), f"curl option not understood: {word}"
            url = word
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    r = (client.post(path, data=data, headers=headers) if data is not None else client.get(path, headers=headers))
    return r.status_code, r.get_json()


def catalog_entry(client, show_id: int, title: str) -> dict | None:
    found = client.get("/v1/titles", query_string={"q": title, "limit": 50}).get_json()["titles"]
    return next((t for t in found if t["id"] == show_id), None)


def assert_related_like(client, shown: list, actual: list, where: str) -> None:
    """Related titles depend on training: as many as shown, of the same shape; each shown one
    is a catalog title with the id and categories shown; scores are cosines."""
    assert len(actual) == len(shown), (where, actual)
    for doc_item, item in zip(shown, actual):
        assert set(item) == set(doc_item), (where, item)
        assert isinstance(item["id"], int) and -1.0 <= item["score"] <= 1.0, (where, item)
        entry = catalog_entry(client, doc_item["id"], doc_item["title"])
        assert entry is not None, f"{where}: no catalog title {doc_item['title']!r} with id {doc_item['id']}"
        assert sorted(entry["categories"]) == sorted(doc_item["categories"]), (where, entry)


def assert_like(client, shown, actual, where: str = "") -> None:
    if isinstance(shown, dict):
        assert isinstance(actual, dict) and set(actual) == set(shown), (where, actual)
        for key in shown:
            if key == "version":
                assert VERSION.match(actual[key]), (where, actual[key])
            elif key == "related":
                assert_related_like(client, shown[key], actual[key], f"{where}.related")
            else:
                assert_like(client, shown[key], actual[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) == len(shown), (where, actual)
        for i, (a, b) in enumerate(zip(shown, actual)):
            assert_like(client, a, b, f"{where}[{i}]")
    else:
        assert actual == shown, (where, actual, shown)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if runner_of(e[2]) == "curl"], ids=example_id)
def test_a_documented_request_answers_as_shown(client, example):
    doc, line, command, output = example
    shown = json.loads(output)
    status, answer = curl(client, command)
    assert status == (shown["error"]["status"] if "error" in shown else 200), answer
    assert_like(client, shown, answer, f"{doc}:{line}")


# ---------------------------------------------------------------- epgembed nightly: its one line
def nights(folder: Path) -> list[Path]:
    """Three nights' `today.xml.gz`: the sample's first 6 days, then days 2-7 (a rolling
    guide: warm start, some shows come and go), then that file cut short (a broken download)."""
    write_sample(folder / "week.xml.gz")
    write_sample(folder / "first.xml.gz", days=6)
    root = etree.fromstring(gzip.decompress((folder / "week.xml.gz").read_bytes()),
                            etree.XMLParser(resolve_entities=False, no_network=True))
    first_day = min(el.get("start")[:8] for el in root.iterchildren("programme"))
    for el in list(root.iterchildren("programme")):
        if el.get("start").startswith(first_day):
            root.remove(el)
    second = gzip.compress(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), mtime=0)
    (folder / "second.xml.gz").write_bytes(second)
    (folder / "broken.xml.gz").write_bytes(second[: len(second) // 2])
    return [folder / "first.xml.gz", folder / "second.xml.gz", folder / "broken.xml.gz"]


def shape(line: str) -> str:
    """The words of a nightly line, with what changes from run to run replaced."""
    line = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{8}", "VERSION", line)
    line = re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", line)
    line = re.sub(r"(?<!\S)/\S+?(?=:\d|\s|$)", "PATH", line)
    return re.sub(r"\d+(?:[.,]\d+)*", "N", line).strip()


def test_the_documented_nightly_runs_print_the_lines_shown(tmp_path, capsys):
    runs = [e for e in EXAMPLES if runner_of(e[2]) == "nightly"]
    dumps = nights(tmp_path)
    assert len(runs) == len(dumps), "one documented run per night of this scenario"
    (tmp_path / "small.json").write_text(json.dumps(NIGHTLY_CONFIG))
    today = tmp_path / "data" / "epg" / "today.xml.gz"      # what the cron job finds each night
    today.parent.mkdir(parents=True)
    for (doc, line, command, output), dump in zip(runs, dumps):
        words = shlex.split(command, comments=True)[1:]
        for option, value in (("--dumps", str(today)), ("--models-root", str(tmp_path / "root"))):
            words[words.index(option) + 1] = value
        shutil.copyfile(dump, today)
        capsys.readouterr()
        main([*words, "--config", str(tmp_path / "small.json")])
        printed = capsys.readouterr().out.strip().splitlines()
        assert [shape(x) for x in printed] == [shape(x) for x in output.strip().splitlines()], \
            f"{doc}:{line}: {printed}"
