"""Refresh: the titles of a fresh dump that the serving model lacks, in the answers within
seconds, without training (the next nightly trains them in with everything else).

    result = run_refresh(["update.xml.gz"], "ROOT", RefreshConfig())
    result.exit_code   # 0 published (or nothing new), 3 refused (run the nightly), 2 error

One run, under ROOT/.lock (a nightly or another refresh holding it: waited for up to
`wait_s`, then registry.RootLocked):
 1. commit a night staged for the current version, remove hidden leftovers of killed runs
    (as the nightly does at its start);
 2. read the current version (every hash checked: a damaged file is never carried on) and
    the dumps: a whole day's guide, or a few programmes. A file that does not parse is
    named with its line and nothing is published (exit 2), as in the nightly; there is no
    input-size and no quality gate (nothing is trained);
 3. build the items the model lacks as ingest builds them (build/ingest/additions.py) and
    embed them with its token table from the tokens training gives an item (title,
    description, guide features: Tokenizer.encode_items, item_tokens' rows), centred like
    the catalog: what RelatedModel.vector_of gives for those tokens. None: nothing is
    published (exit 0). More than `max_share` of the catalog: refused, the nightly is the
    tool for that (exit 3). A title the model has is never changed nor removed;
 4. write the new version beside the others (artifact/extend.py; the index files by
    build/index/extend.py: only what the new titles change), publish it as the nightly
    publishes (registry.publish: loaded and self-tested, renamed into versions/, `current`
    swapped with one rename), then prune refreshes past `keep_refreshes` (never a trained
    version, never the current one).
It writes no history night and no report file: the history stays the nightly's record (the
night's own dumps bring these programmes again); the manifest's `refresh` entry says what a
version added, and RefreshResult what the run did.
"""
from __future__ import annotations

import functools
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from epgembed import registry
from epgembed.artifact.extend import extend_folder
from epgembed.artifact.folder import ModelFolder, read_folder
from epgembed.artifact.manifest import Manifest, ModelError, RefreshInfo, read_manifest
from epgembed.artifact.show import Show
from epgembed.build.index.extend import extend_indexes
from epgembed.build.ingest.additions import added_shows
from epgembed.build.ingest.epg import expand_paths
from epgembed.fsutil import escape_name
from epgembed.nightly import history
from epgembed.query.vectors import title_vectors

EXIT_PUBLISHED, EXIT_ERROR, EXIT_REFUSED = 0, 2, 3


@dataclass(frozen=True)
class RefreshConfig:
    # The most titles one refresh adds, as a share of the serving catalog: more is a new
    # guide rather than an update of one, and so many untrained titles (each placed by its
    # words and guide features alone) are better trained in by the nightly.
    max_share: float = 0.2
    keep_refreshes: int = registry.KEEP_REFRESHES
    # Seconds to wait for the root's lock while a nightly (or another refresh) holds it;
    # 0: give up at once (a timer's next refresh comes soon enough).
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.max_share or self.keep_refreshes < 0 or self.wait_s < 0:
            raise ValueError("max_share must be > 0, keep_refreshes and wait >= 0")


@dataclass
class RefreshResult:
    exit_code: int
    status: str                       # "published" | "unchanged" | "refused" | "error"
    summary: str                      # the one line a scheduler's log shows
    version: str | None = None        # the version published
    added: list[str] = field(default_factory=list)    # keys of the titles added
    details: dict = field(default_factory=dict)        # timings, bytes written, pruned, ...


class Refused(Exception):
    """The refresh would add too much: the nightly's job."""


def item_vectors(folder: ModelFolder, shows: list[Show]) -> np.ndarray:
    """[m, D] vectors of new catalog items in `folder`'s model: each item's tokens as
    training gives them (encode_items: item_tokens of title, description and features),
    summed over the token table and centred like the catalog (RelatedModel.vector_of)."""
    ids, weights = folder.tokenizer.encode_items([s.key for s in shows], [s.context for s in shows],
                                                 [s.features for s in shows])
    center = folder.vectors.center
    return title_vectors(folder.tokens.embeddings, ids, weights, center if np.any(center) else None)


def refresh_info(base: Manifest, shows: list[Show], inputs: list[str], programmes: int) -> RefreshInfo:
    """The manifest entry of a refresh of `base` adding `shows`."""
    trained = base.refresh.trained if base.refresh is not None else base.version
    return RefreshInfo(of=base.version, trained=trained, first_added=base.first_refreshed(),
                       added=[s.key for s in shows], inputs=inputs, programmes=programmes)


def publish(root: Path, build: Path, manifest: Manifest) -> str:
    """registry.publish the build; if a version of that name and those very files is there
    already (a run killed after renaming it into versions/, before swapping `current`, in
    the same second), point `current` at that one instead, once it loads (a rollback)."""
    existing = registry.versions_dir(root) / manifest.version
    if existing.is_dir():
        try:
            same = read_manifest(existing).files == manifest.files
        except ModelError:
            same = False
        if same:
            return registry.rollback(root, manifest.version)[1]
    return registry.publish(root, build)


def run_refresh(dumps: list[str | Path], root: str | Path, rcfg: RefreshConfig = RefreshConfig()) -> RefreshResult:
    """One refresh of the root's current version; raises registry.RootLocked when another
    run holds the root for longer than rcfg.wait_s."""
    root, t0 = Path(root), time.perf_counter()
    with registry.locked(root, wait=rcfg.wait_s, holder="refresh"):
        details: dict = {"timings": {"lock_s": round(time.perf_counter() - t0, 3)}}
        details["recovered"], details["cleaned"] = history.recover_and_clean(root)
        build = registry.versions_dir(root) / f".refresh-{uuid.uuid4().hex[:12]}"
        try:
            result = _run([Path(d) for d in dumps], root, rcfg, build, details)
        except Refused as e:
            result = RefreshResult(EXIT_REFUSED, "refused", f"REFUSED: {e}")
        except Exception as e:  # noqa: BLE001 - any failure: say it, publish nothing
            result = RefreshResult(EXIT_ERROR, "error", f"ERROR: {escape_name(f'{type(e).__name__}: {e}')}")
        finally:
            shutil.rmtree(build, ignore_errors=True)
        details["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
        result.details = {**details, **result.details}
        result.summary = (f"refresh: {result.summary} | current {registry.current_version(root) or 'none'} | "
                          f"{details['timings']['total_s']:.2f} s")
        return result


def _run(dumps: list[Path], root: Path, rcfg: RefreshConfig, build: Path, details: dict) -> RefreshResult:
    clock, marks = details["timings"], [time.perf_counter()]

    def lap(stage: str) -> None:
        marks.append(time.perf_counter())
        clock[stage] = round(marks[-1] - marks[-2], 3)

    current = registry.current_dir(root)
    if current is None:
        raise ValueError(f"{escape_name(str(root))}: nothing published yet; a refresh adds titles to a "
                         "trained version (run the nightly, or `epgembed publish` a model, first)")
    base = read_folder(current)
    files = expand_paths(dumps)
    programmes, _, errors = history.read_dumps(files)
    if errors:
        raise ValueError("dump failed to parse: " + "; ".join(errors) + " (nothing published)")
    shows = added_shows(base.catalog, programmes, base.manifest.model_config())
    lap("read_s")
    n = len(base.catalog)
    read = f"{len(files)} file{'' if len(files) == 1 else 's'}, {len(programmes):,} programmes"
    if not shows:
        return RefreshResult(EXIT_PUBLISHED, "unchanged", f"nothing new ({read}: every title is in the "
                                                          f"model): nothing published")
    if len(shows) > rcfg.max_share * n:
        raise Refused(f"{read} hold {len(shows):,} titles the model lacks, {len(shows) / n:.1%} of its {n:,} "
                      f"(more than {rcfg.max_share:.0%}): run the nightly instead (epgembed nightly), "
                      "which trains them in; nothing published")
    vectors = item_vectors(base, shows)
    stats: dict = {}
    cfg = base.manifest.model_config().index
    indexes = functools.partial(extend_indexes, base=base, cfg=cfg, stats=stats,
                                vectors=np.concatenate([np.asarray(base.vectors.vectors), vectors]))
    info = refresh_info(base.manifest, shows, [escape_name(str(f)) for f in files], len(programmes))
    manifest = extend_folder(base, build, shows, vectors, indexes, info, stats)
    lap("write_s")
    version = publish(root, build, manifest)
    lap("publish_s")
    pruned, warnings = [], []
    try:
        pruned = registry.prune(root, None, rcfg.keep_refreshes)
    except OSError as e:         # only what is no longer needed is deleted: a warning
        warnings.append(f"prune: {e}")
    more = f", {len(pruned)} old refresh{'es' if len(pruned) != 1 else ''} pruned" if pruned else ""
    return RefreshResult(EXIT_PUBLISHED, "published",
                         f"PUBLISHED {version}: +{len(shows):,} titles ({n + len(shows):,} in all; from {read}; "
                         f"refresh of {base.manifest.version}{more})", version, info.added,
                         {**stats, "pruned": pruned, "warnings": warnings})
