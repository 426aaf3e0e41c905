"""The model folder's manifest, typed, and the table of the folder's files.

    manifest = read_manifest("MODEL_DIR")       # Manifest, or ModelError naming what is wrong
    write_manifest("MODEL_DIR", manifest)       # the one writer (atomic)

A Manifest is what a folder says about itself: its format, version id, shapes, the config
it was built with, what it was built from, how training went, the held-out quality it was
published at, the library versions that wrote it and every file's size and sha256. It is
checked when read: a missing or wrong-typed field is refused by name, and so are files the
table below does not expect (e.g. neighbours.npy in a model with no neighbour table).

Format 2 (this one) is format 1 with every entry required: `search`, `neighbours`,
`neighbour_table`, `feature_kinds`, `quality` and `libraries` were added to format 1 over
time, so a format 1 manifest may lack them. In format 2 the config section holds exactly
Config's options, tokenizer.json (epgembed-tokenizer/2) every entry, and a history night its
format line (nightly/nightfile.py). upgrade.py turns format 1 into format 2 when it is read,
rewriting nothing; a newer format is refused. One entry is optional, and absent from a
trained model's manifest: `refresh`, in a version made by `epgembed refresh` (titles added
to a trained model without training; nightly/refresh.py): what it refreshed and added. The
files are the same as a trained model's (the table below).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from epgembed.artifact import upgrade
from epgembed.config import Config
from epgembed.fsutil import atomic_write

FORMAT = "epgembed-model"
FORMAT_VERSION = 2
METRIC = "angular"        # unit vectors in an Annoy angular index: cosine = 1 - d^2 / 2
MANIFEST = "manifest.json"


class ModelError(Exception):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


@dataclass(frozen=True)
class FolderFile:
    """One file of a model folder: who writes (and reads) it, and when it is there."""
    name: str
    part: str
    when: str = "always"     # "always", "pieces" (a tokenizer with sentencepiece pieces),
                             # "table" (neighbours > 0), "probe" (search method "probe")


PROBE_FILES = ("centroids.npy", "order.npy", "bounds.npy", "cluster_vectors.npy")
FOLDER_FILES = (
    FolderFile("tokenizer.json", "text/tokenize.py Tokenizer: metadata and word lists"),
    FolderFile("tokenizer.model", "text/tokenize.py Tokenizer: the sentencepiece model", "pieces"),
    FolderFile("embeddings.npy", "artifact/parts.py TokenTable: [V, D] float32, row 0 = PAD = zero"),
    FolderFile("token_counts.npy", "artifact/parts.py TokenTable: [V] int64 training frequency"),
    FolderFile("vectors.npy", "artifact/parts.py TitleVectors: [S, D] float32 unit title vectors"),
    FolderFile("center.npy", "artifact/parts.py TitleVectors: [D] float32 mean subtracted (or zeros)"),
    FolderFile("catalog.jsonl", "artifact/catalog.py Catalog: one show per line, ids 0..S-1"),
    FolderFile("history.json", "artifact/parts.py write_history: per-epoch training history"),
    FolderFile("neighbours.npy", "artifact/parts.py NeighbourTable: [S, K] int32 ids, best first", "table"),
    FolderFile("neighbour_scores.npy", "artifact/parts.py NeighbourTable: [S, K] float32 cosines", "table"),
    *(FolderFile(name, "build/index/build.py writes, query/probe.py opens: the cluster probe", "probe")
      for name in PROBE_FILES),
    FolderFile("index.ann", "build/index/build.py writes, query/annoy.py opens: Annoy (angular)"),
)
VERSION_EXTRAS = (MANIFEST, "report.json")   # beside the manifest's files: a version's own

_SHAPE = dict(forbid_unknown_fields=True, frozen=True)


class FileEntry(msgspec.Struct, **_SHAPE):
    sha256: str
    bytes: int


class NeighbourTableInfo(msgspec.Struct, **_SHAPE):
    """How the neighbour table was built: exact, or clustered past IndexConfig.neighbours_max_shows."""
    method: Literal["exact", "clustered"]
    recall_at_10: float | None           # sampled against exact search (1.0: exact)
    build_s: float | None = None
    probe: int | None = None             # clustered: the clusters each title is compared with


class SearchInfo(msgspec.Struct, **_SHAPE):
    """How vectors that are no catalog row are searched (query/probe.py)."""
    method: Literal["exact", "probe", "annoy"]
    build_s: float | None = None
    clusters: int | None = None          # probe: the clusters, and the rows scored per query
    rows: int | None = None
    recall_at_10: float | None = None

    def __post_init__(self) -> None:
        if self.method == "probe" and (self.clusters is None or self.rows is None):
            raise ValueError("a probe search needs its clusters and rows")


class Counts(msgspec.Struct, **_SHAPE):
    shows: int
    labelled_shows: int
    categories: int
    airings: int


class DataSummary(msgspec.Struct, **_SHAPE):
    """What the model was built from; the nightly run adds the night and its history."""
    files: list[str]
    programmes: int
    skipped: list[tuple[str, int | None, str]]      # (file, line, why)
    skip_counts: dict[str, int]
    empty_titles: int
    dropped_programmes: dict[str, int]
    supervising_categories: int
    labelled_for_training: int
    inputs: list[str]
    night: str | None = None
    history_nights: list[str] | None = None
    programmes_tonight: int | None = None


class ExchangeTraffic(msgspec.Struct, **_SHAPE):
    """What one rank of a data-parallel run sent (build/model/exchange.py, Traffic)."""
    steps: int
    bytes_sent: int                      # as the collectives move them
    rows: int                            # rows this rank computed, summed over the steps
    applied: int                         # distinct rows every rank applied, summed
    seconds: float                       # in the exchange
    bytes_per_step: int
    rows_per_step: float
    applied_per_step: float
    written_bytes: int | None = None     # what the process wrote meanwhile, where known


class DistributedTraining(msgspec.Struct, **_SHAPE):
    """A data-parallel training run (build/model/distributed.py): how many ranks, how they
    summed their gradients, the table digest every rank reached, the traffic of the rank
    that wrote the folder (rank 0)."""
    ranks: int
    exchange: str
    table_sha256: str
    traffic: ExchangeTraffic


class TrainingSummary(msgspec.Struct, **_SHAPE):
    best_epoch: int
    epochs_run: int
    seconds: float
    examples: int
    examples_per_s: float
    val_p_at_10: float | None
    timings: dict[str, float]            # seconds per stage before the write
    distributed: DistributedTraining | None = None   # trained by several ranks


class RefreshInfo(msgspec.Struct, **_SHAPE):
    """A version made by a refresh (nightly/refresh.py): the version `of` with titles of fresh
    dumps that it lacked appended, embedded with its token table; nothing else changed since
    the version `trained` (the last trained one: a refresh of a refresh keeps it). Ids only
    grow: the ids from `first_added` on were added by refreshes since `trained` (new since
    the last training), the last len(added) of them by this one."""
    of: str
    trained: str
    first_added: int
    added: list[str]                     # the keys of this refresh's titles, in id order
    inputs: list[str]
    programmes: int                      # programmes read from the inputs

    def __post_init__(self) -> None:
        if not self.added:
            raise ValueError("a refresh adds at least one title")


class Manifest(msgspec.Struct, omit_defaults=True, **_SHAPE):
    format: Literal["epgembed-model"]
    format_version: int
    version: str
    created: str
    metric: Literal["angular"]
    dim: int
    vocab_size: int
    n_shows: int
    n_trees: int
    neighbours: int                      # columns of the neighbour table; 0: no table
    neighbour_table: NeighbourTableInfo | None
    search: SearchInfo
    counts: Counts
    feature_kinds: dict[str, int]        # shows per guide feature kind
    config: dict[str, dict[str, Any]]    # Config.to_dict() of the build
    data: DataSummary
    training: TrainingSummary
    quality: dict[str, int | float | None]   # held-out figures it was published at ({}: none)
    libraries: dict[str, str | None]     # versions of the libraries that wrote the files
    files: dict[str, FileEntry]
    refresh: RefreshInfo | None = None   # a refresh's version: what it added (absent: trained)

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version {self.format_version} is not {FORMAT_VERSION}")
        if self.refresh is not None and not 1 <= self.refresh.first_added <= self.n_shows - len(self.refresh.added):
            raise ValueError(f"refresh: first_added {self.refresh.first_added} and {len(self.refresh.added)} "
                             f"added titles do not fit {self.n_shows} shows")
        try:
            full = Config.from_dict(self.config).to_dict()
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"config: {e}") from None
        missing = [f"{name}.{k}" for name, options in full.items() for k in options
                   if k not in self.config.get(name, {})]
        if missing:
            raise ValueError(f"config: no {', '.join(missing)}")
        why = files_problem(self)
        if why:
            raise ValueError(f"files: {why}")

    def model_config(self) -> Config:
        """The Config the model was built with."""
        return Config.from_dict(self.config)

    def first_refreshed(self) -> int:
        """The first id added by a refresh since the last training (n_shows: none)."""
        return self.refresh.first_added if self.refresh is not None else self.n_shows


def expected_files(m: Manifest) -> tuple[set[str], set[str]]:
    """(the files this manifest's model must have, those it may have) by the folder table."""
    present = {"always": True, "pieces": None, "table": m.neighbours > 0,
               "probe": m.search.method == "probe"}
    must = {f.name for f in FOLDER_FILES if present[f.when] is True}
    may = {f.name for f in FOLDER_FILES if present[f.when] is None}
    return must, may


def files_problem(m: Manifest) -> str | None:
    must, may = expected_files(m)
    missing = sorted(must - set(m.files))
    extra = sorted(set(m.files) - must - may)
    if missing:
        return f"no entry for {', '.join(missing)}"
    if extra:
        return f"unexpected {', '.join(extra)} (not a file of this model)"
    if m.neighbours > 0 and m.neighbour_table is None:
        return "a neighbour table without its neighbour_table entry"
    return None


def read_manifest(model_dir: str | Path) -> Manifest:
    """The folder's manifest, upgraded when it is of format 1 (upgrade.py); ModelError for
    a missing, unreadable, foreign or newer one, or a field missing or of the wrong type."""
    path = Path(model_dir) / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{model_dir}: no {MANIFEST} (not a model directory)") from None
    except OSError as e:
        raise ModelError(f"{path}: unreadable manifest: {e}") from None
    return decode_manifest(raw, path)


def decode_manifest(raw: bytes, path: Path) -> Manifest:
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ModelError(f"{path}: unreadable manifest: {e}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a manifest (a JSON {type(data).__name__})")
    fmt, version = data.get("format"), data.get("format_version")
    if fmt != FORMAT or type(version) is not int:
        raise ModelError(f"{path}: unsupported format {fmt!r} version {version!r} "
                         f"(expected {FORMAT} {FORMAT_VERSION})")
    if version > FORMAT_VERSION or version < 1:
        raise ModelError(f"{path}: unsupported format {fmt} version {version}: this epgembed reads "
                         f"versions 1 to {FORMAT_VERSION} (a newer one is read by the epgembed that wrote it)")
    if version < FORMAT_VERSION:
        try:
            data = upgrade.manifest(data, version, path.parent)
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as e:
            raise ModelError(f"{path}: cannot upgrade format {version} to {FORMAT_VERSION}: "
                             f"{type(e).__name__}: {e}") from None
    try:
        return msgspec.convert(data, Manifest)
    except msgspec.ValidationError as e:
        raise ModelError(f"{path}: invalid manifest: {e}") from None


def listed_files(model_dir: Path) -> set[str] | None:
    """The files a folder's manifest lists, as far as it can be read, or None when the
    folder has no manifest of ours: whether a damaged model may be replaced by a new one
    (bundle.replace_problem) needs no more of it."""
    try:
        data = json.loads((Path(model_dir) / MANIFEST).read_text(encoding="utf-8"))
        return set(data["files"]) if data.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def encode_manifest(manifest: Manifest) -> bytes:
    """Indented JSON; a NaN or infinite figure is refused (no JSON: a figure is a number or null)."""
    return json.dumps(msgspec.to_builtins(manifest), indent=2, ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def write_manifest(model_dir: str | Path, manifest: Manifest) -> Manifest:
    """Write the manifest (fsynced, renamed over the old one: a reader sees one or the
    other); returns it as a reader gets it back. A manifest that would not read back (a
    field of the wrong type) is refused before anything is written (ValueError)."""
    data = encode_manifest(manifest)
    try:
        checked = msgspec.json.decode(data, type=Manifest)
    except msgspec.ValidationError as e:
        raise ValueError(f"{Path(model_dir) / MANIFEST}: not written, invalid manifest: {e}") from None
    atomic_write(Path(model_dir) / MANIFEST, data)
    return checked
