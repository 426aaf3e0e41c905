"""Data-parallel training (model/distributed.py): 2 ranks as 2 processes on loopback, started
by torchrun --standalone (a free port), on the project's sample (data/sample.xml.gz).

The ranks step through the same batches, each on its half of every batch's examples, and
apply the summed gradients alike: the table must be bit-identical on both ranks and equal
to the one-process table up to the order of float additions."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from epgembed import registry
from epgembed.artifact.manifest import read_manifest
from epgembed.cli.main import main
from epgembed.config import Config
from epgembed.build.model.distributed import launch
from epgembed.query.requests import Options
from epgembed.query.load import load_model

pytestmark = pytest.mark.system

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.xml.gz"
RUN_S = 180          # a run that takes longer is hung (each takes about 7 s here)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The one-process model of the sample, default config."""
    from epgembed.build.pipeline import train_model
    out = tmp_path_factory.mktemp("single") / "m"
    train_model([SAMPLE], out, Config(), threads=1)
    return out


def test_two_ranks_train_the_one_process_model_and_rank_0_alone_writes_it(tmp_path, single):
    out = tmp_path / "models" / "m"
    done = launch(["train", str(SAMPLE), "--out", str(out), "--distributed", "--quiet"], 2,
                  cwd=tmp_path, timeout=RUN_S)
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.startswith("model ")]) == 1, done.stdout   # one writer
    follower = [line for line in lines if line.startswith("rank 1 of 2: trained 10 epochs")]
    assert len(follower) == 1 and follower[0].endswith("rank 0 writes the model"), done.stdout
    assert [p.name for p in out.parent.iterdir()] == ["m"]                # nothing else written

    table = np.load(out / "embeddings.npy")
    rank1 = re.search(r"table sha256 ([0-9a-f]{64})", follower[0]).group(1)
    assert hashlib.sha256(table.tobytes()).hexdigest() == rank1          # bit-identical ranks
    manifest, alone = read_manifest(out), read_manifest(single)
    ranks = manifest.training.distributed
    assert ranks.ranks == 2 and ranks.table_sha256 == rank1 and ranks.traffic.bytes_per_step > 0
    assert alone.training.distributed is None
    # the same folder: format, files and config as one process writes
    assert (manifest.format, manifest.format_version) == (alone.format, alone.format_version)
    assert sorted(manifest.files) == sorted(alone.files) and manifest.config == alone.config
    model = load_model(out)                                               # hashes and self-test
    assert model.related("Premier Football Tonight", Options(k=5)).related

    # the same batches and math as one process, only the order of float additions differs
    # (3e-7 after the sample's 90 steps): the held-out figure is the same to within 0.02,
    # 6 of the 280 answers of its 28 validation titles
    assert np.abs(table - np.load(single / "embeddings.npy")).max() < 1e-3
    assert manifest.training.val_p_at_10 == pytest.approx(alone.training.val_p_at_10, abs=0.02)


def test_nightly_distributed_publishes_from_rank_0_only(tmp_path):
    root = tmp_path / "root"
    args = ["nightly", "--dumps", str(SAMPLE), "--models-root", str(root), "--distributed", "--quiet"]
    first = launch(args, 2, cwd=tmp_path, timeout=RUN_S)
    assert "PUBLISHED" in first.stdout, first.stdout
    assert re.search(r"^rank 1 of 2: trained .*; rank 0 publishes$", first.stdout, re.M), first.stdout
    versions = registry.list_versions(root)
    assert len(versions) == 1 and registry.current_version(root) == versions[0]["version"]
    reports = sorted((root / "reports").glob("*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    assert report["status"] == "published" and report["training"]["distributed"]["ranks"] == 2

    # rank 0 decides not to train (the same inputs): the other rank is told, and exits 0
    again = launch(args, 2, cwd=tmp_path, timeout=RUN_S)
    assert "UNCHANGED" in again.stdout, again.stdout
    assert "rank 1 of 2: rank 0 stopped before training" in again.stdout
    assert [v["version"] for v in registry.list_versions(root)] == [versions[0]["version"]]


@pytest.mark.parametrize("exchange", ["allgather", "union"])
def test_a_group_of_one_rank_trains_the_one_process_table(tmp_path, exchange):
    """In this process, a process group of one (gloo, a file store): each exchange, the
    shared validation figure and the end-of-training check give train()'s table without a
    group, to float rounding (3 epochs: 1e-6), and the same held-out figures."""
    from epgembed.build.model.distributed import Group
    from epgembed.build.pipeline import fit, prepare
    cfg = Config().replace(train={"epochs": 3, "min_examples": 0})
    prep = prepare([SAMPLE], cfg)
    alone = fit(prep, cfg)
    with Group.open(0, 1, f"file://{tmp_path / 'store'}", exchange=exchange) as group:
        ranked = fit(prep, cfg, group=group)
    assert np.abs(ranked.embeddings - alone.embeddings).max() < 1e-5
    assert [h["val_p_at_10"] for h in ranked.history] == [h["val_p_at_10"] for h in alone.history]
    assert ranked.distributed.exchange == exchange and ranked.distributed.traffic.steps > 0


def test_distributed_outside_torchrun_says_how_to_start_it(tmp_path, monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["train", str(SAMPLE), "--out", str(tmp_path / "m"), "--distributed"]) == 2
    err = capsys.readouterr().err
    assert "torchrun" in err and "RANK" in err
    assert not (tmp_path / "m").exists()
