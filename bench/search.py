"""`make bench-search`: the title search box (service/search.py) with typos (issue 17).

    python bench/search.py [--queries 1000] [--sizes 100000,1000000] [--seed 0]

Real catalog: every dump of ../shared/data/epg read together (build_catalog, ~12k titles).
Typo queries: `--queries` catalog keys of 5+ characters (seeded), each with one edit: a
deletion, an insertion or a substitution (a random letter a-z) or an adjacent transposition
of two different characters, the kind drawn uniformly. hit@5 = the original key's id among
the first 5 results of search(typo, 10); target >= 0.95.
Unchanged: as many keys as they are (exact) and as many prefixes of keys (cut at a random
length): the results that are not typo matches must equal the answers of the search before
typo matching (service/search.py at git HEAD when that file differs, else the same index
with the typo stage switched off), and come first.
Titles as the service shows them (issue 26), per dump (each dump's own catalog, as a model of
it serves): every display title queried as it is must come first (exact-title hit@1, target
1.0; a title folding to the same text as another counts for either), and with one edit
(as above, but never at the first character) among the first 5 (one-typo hit@5 over every
title of 5+ characters, target >= 0.95).
Latency: every query timed alone, in-process (p50/p99 ms; target p99 <= 5 ms at 12k), the
whole search and the typo stage alone. Scale: synthetic catalogs of `--sizes` keys (the
words of the flat synthetic guide's per-language vocabularies (epgembed.gen.synthflat), Zipf, 1-8 words, a fifth of them
`series: episode`): build time, resident memory added (RSS), the trigram index's bytes,
latency and hit@5 of the same kind of queries. Writes bench/results/search.json and .md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DUMPS = REPO.parent / "shared" / "data" / "epg"
RESULTS = REPO / "bench" / "results"
LETTERS = "abcdefghijklmnopqrstuvwxyz"

from epgembed.query.search import TitleIndex, normalize_query  # noqa: E402


def one_edit(key: str, rng: random.Random, first: int = 0) -> tuple[str, str]:
    """`key` with one edit of a random kind at a random place from `first` on; (typo, kind).
    The edit must change the query (its normalized form), else it is drawn again."""
    while True:
        kind = rng.choice(("deletion", "insertion", "substitution", "transposition"))
        i = rng.randrange(first, len(key))
        if kind == "deletion":
            out = key[:i] + key[i + 1:]
        elif kind == "insertion":
            out = key[:i] + rng.choice(LETTERS) + key[i:]
        elif kind == "substitution":
            out = key[:i] + rng.choice(LETTERS.replace(key[i], "")) + key[i + 1:]
        else:
            i = rng.randrange(first, len(key) - 1)
            out = key[:i] + key[i + 1] + key[i] + key[i + 2:]
        if normalize_query(out) not in ("", normalize_query(key)):
            return out, kind


def percentiles(ns: list[int]) -> dict:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 4)}


def timed(fn, queries: list[str]) -> tuple[list, dict]:
    for q in queries[:50]:                                   # warm caches (normalize_query is lru_cached)
        fn(q)
    out, ns = [], []
    for q in queries:
        t0 = time.perf_counter_ns()
        r = fn(q)
        ns.append(time.perf_counter_ns() - t0)
        out.append(r)
    return out, percentiles(ns)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def typo_stage(idx: TitleIndex, limit: int = 10):
    def run(q: str) -> dict:
        out: dict[int, str] = {}
        idx._typo(normalize_query(q), limit, out)
        return out
    return run


def typo_figures(idx: TitleIndex, keys: list[str], n: int, rng: random.Random) -> dict:
    ids = rng.sample([i for i, k in enumerate(keys) if len(k) >= 5], n)
    made = [one_edit(keys[i], rng) for i in ids]
    queries = [q for q, _ in made]
    found, lat = timed(lambda q: idx.search(q, 10), queries)
    _, stage = timed(typo_stage(idx), queries)
    idx._typo = lambda q, limit, out: None                  # the same index as before typos
    _, off = timed(lambda q: idx.search(q, 10), queries)
    del idx._typo
    hit5 = [i in [m.id for m in r[:5]] for i, r in zip(ids, found)]
    kinds: dict[str, list[bool]] = {}
    for (_, kind), h in zip(made, hit5):
        kinds.setdefault(kind, []).append(h)
    how = [next((m.match for m in r if m.id == i), "missed") for i, r in zip(ids, found)]
    misses = [{"key": keys[i], "query": q, "top5": [keys[m.id] for m in r[:5]]}
              for i, q, r, h in zip(ids, queries, found, hit5) if not h]
    return {"queries": n, "hit_at_5": round(float(np.mean(hit5)), 4),
            "hit_at_1": round(float(np.mean([bool(r) and r[0].id == i for i, r in zip(ids, found)])), 4),
            "hit_at_5_by_kind": {k: round(float(np.mean(v)), 4) for k, v in sorted(kinds.items())},
            "original_found_as": {k: how.count(k) for k in sorted(set(how))},
            "latency_search_10": lat, "latency_typo_stage": stage, "latency_search_10_typo_stage_off": off,
            "misses": misses[:15]}


def title_figures(path: Path, seed: int) -> dict:
    """Every catalog title of one dump as the service shows it (issue 26): the title itself
    must come first (hit@1; a title that folds to the same text as another counts for
    either), and one edit away from its first character must be among the first 5 (titles
    of 5 characters or more)."""
    from epgembed.build.ingest.catalog_build import build_catalog
    from epgembed.build.ingest.epg import read_programmes
    catalog = build_catalog(read_programmes([path]))
    idx = TitleIndex.from_catalog(catalog)
    titles = [s.title for s in catalog.shows]
    forms = [normalize_query(t) for t in titles]

    def hit(i: int, found: list, n: int) -> bool:
        return any(m.id == i or forms[m.id] == forms[i] for m in found[:n])
    exact, exact_ns = timed(lambda q: idx.search(q, 10), titles)
    rng = random.Random(seed)
    long = [i for i, t in enumerate(titles) if len(t) >= 5]
    typos = [one_edit(titles[i], rng, first=1)[0] for i in long]
    near, near_ns = timed(lambda q: idx.search(q, 10), typos)
    exact_hits = [hit(i, r, 1) for i, r in enumerate(exact)]
    near_hits = [hit(i, r, 5) for i, r in zip(long, near)]
    return {"dump": path.name, "titles": len(titles), "index_entries": idx.n,
            "exact_title_hit_at_1": round(float(np.mean(exact_hits)), 4), "exact_latency_search_10": exact_ns,
            "typo_titles": len(long), "one_typo_hit_at_5": round(float(np.mean(near_hits)), 4),
            "typo_latency_search_10": near_ns,
            "exact_misses": [titles[i] for i, h in enumerate(exact_hits) if not h][:10],
            "typo_misses": [{"title": titles[i], "query": q} for i, q, h in zip(long, typos, near_hits) if not h][:10]}


def baseline_class(rev: str) -> tuple[type, str]:
    """TitleIndex as it was at git `rev` when service/search.py differs there, else the
    current one with its typo stage switched off."""
    here = (REPO / "service" / "search.py").read_text()
    try:
        old = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:service/search.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        old = here
    if old != here and "_typo" not in old:
        mod = sys.modules["search_before"] = types.ModuleType("search_before")
        exec(compile(old, f"{rev}:service/search.py", "exec"), mod.__dict__)
        return mod.TitleIndex, f"service/search.py at git {rev}"

    class NoTypo(TitleIndex):
        def _typo(self, q, limit, out):
            return None
    return NoTypo, "the current TitleIndex with the typo stage off"


def unchanged_figures(idx: TitleIndex, keys: list[str], n: int, rng: random.Random, rev: str) -> dict:
    cls, what = baseline_class(rev)
    before = cls(keys)
    exact = rng.sample(keys, n)
    prefixes = [k[: rng.randint(1, len(k))] for k in rng.sample(keys, n)]
    row = {"baseline": what}
    for name, queries in (("exact", exact), ("prefix", prefixes)):
        found, lat = timed(lambda q: idx.search(q, 10), queries)
        same = first = 0
        for q, r in zip(queries, found):
            old = [(m.id, m.match) for m in before.search(q, 10)]
            plain = [(m.id, m.match) for m in r if m.match != "typo"]
            same += plain == old
            first += [(m.id, m.match) for m in r[: len(old)]] == old
        row[name] = {"queries": n, "same_answers": same, "same_answers_first": first,
                     "with_typo_matches_after": sum(any(m.match == "typo" for m in r) for r in found),
                     "latency_search_10": lat}
    return row


def synthetic_keys(n: int, seed: int) -> list[str]:
    """n distinct keys from the flat synthetic guide's vocabularies (Zipf words, 1-8 per key,
    a fifth `series: episode` with a series from a pool of n / 50), sorted like a catalog."""
    from epgembed.gen.synthflat import FlatSynth
    from epgembed.gen.synthtext import LANG_SHARE, LANGS
    s, rng = FlatSynth(n, seed), np.random.default_rng(seed)
    keys: set[str] = set()
    while len(keys) < n:
        m = n - len(keys) + n // 20
        langs = rng.choice(len(LANGS), size=m, p=LANG_SHARE / LANG_SHARE.sum())
        counts = np.minimum(8, 1 + rng.poisson(2.0, m))
        made: list[str] = []
        for li, lang in enumerate(LANGS):
            v, c = s.vocab[lang], counts[langs == li]
            words, ids, pos, sep = v.words, v.sample(rng, int(c.sum())).tolist(), 0, "" if lang == "ja" else " "
            for k in c.tolist():
                made.append(sep.join(words[j] for j in ids[pos:pos + k]))
                pos += k
        rng.shuffle(made)
        pool = made[: max(1, n // 50)]
        for j in range(0, len(made), 5):
            made[j] = f"{pool[j % len(pool)]}: {made[j]}"
        keys.update(made)
    return sorted(keys)[:n] if len(keys) == n else sorted(rng.choice(sorted(keys), n, replace=False).tolist())


def mb(*arrays) -> float:
    return round(sum(a.nbytes if isinstance(a, np.ndarray) else sys.getsizeof(a) for a in arrays) / 2**20, 1)


def scale_figures(n: int, queries: int, seed: int) -> dict:
    t0 = time.perf_counter()
    keys = synthetic_keys(n, seed)
    gen_s = time.perf_counter() - t0
    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    idx = TitleIndex(keys)
    build_s = time.perf_counter() - t0
    rss1 = rss_mb()
    t0 = time.perf_counter()
    idx._build_grams()                                      # again, alone: its time, then its memory
    grams_s = time.perf_counter() - t0
    tracemalloc.start()
    idx._build_grams()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = {"keys": n, "mean_key_chars": round(float(np.mean([len(k) for k in keys])), 1),
           "generate_s": round(gen_s, 1), "build_s": round(build_s, 2), "build_trigrams_s": round(grams_s, 2),
           "memory_mb": {"before_typos": mb(idx._text, idx._starts, idx._order, idx._words),
                         "typo_trigrams": mb(idx._post, idx._gram, idx._gptr, idx._lens, idx._is_word),
                         "trigram_build_peak_traced": round(peak / 2**20, 1),
                         "rss_growth_whole_build": round(rss1 - rss0, 1)},
           "distinct_trigrams": int(len(idx._gram)), "postings": int(len(idx._post))}
    rng = random.Random(seed)
    row["typo"] = typo_figures(idx, keys, queries, rng)
    row["typo"].pop("misses")
    _, row["exact_latency_search_10"] = timed(lambda q: idx.search(q, 10), rng.sample(keys, queries))
    return row


def markdown(r: dict) -> str:
    t, u, s = r["catalog"]["typo"], r["catalog"]["unchanged"], r["catalog"]["titles_as_shown"]
    row = "| {} | {p50_ms} | {p99_ms} | {max_ms} |".format
    out = [f"# Title search with typos ({r['date']}, `{r['command']}`)", "",
           f"Shared-data catalog: {r['catalog']['keys']:,} keys, index built in {r['catalog']['build_s']} s.", "",
           f"One-edit typos of {t['queries']} keys: hit@5 **{t['hit_at_5']}** (target >= 0.95), hit@1 {t['hit_at_1']}; "
           f"by kind {t['hit_at_5_by_kind']}; the original found as {t['original_found_as']}.", "",
           f"Unchanged against {u['baseline']}: exact {u['exact']['same_answers']}/{u['exact']['queries']}, "
           f"prefix {u['prefix']['same_answers']}/{u['prefix']['queries']} with the same non-typo answers, "
           f"in front ({u['exact']['same_answers_first']}, {u['prefix']['same_answers_first']}).", "",
           "Titles as the service shows them, every title of each dump's own catalog: exact-title hit@1 "
           f"**{s['exact_title_hit_at_1']}** (lowest dump; target 1.0), one typo from the 2nd character "
           f"hit@5 **{s['one_typo_hit_at_5']}** (all titles of 5+ characters; lowest dump "
           f"{s['one_typo_hit_at_5_lowest_dump']}; target >= 0.95).", "",
           "| dump | titles | index entries | exact hit@1 | one-typo hit@5 | exact p99 ms | typo p99 ms |",
           "|---|---:|---:|---:|---:|---:|---:|",
           *(f"| {d['dump']} | {d['titles']:,} | {d['index_entries']:,} | {d['exact_title_hit_at_1']} | "
             f"{d['one_typo_hit_at_5']} | {d['exact_latency_search_10']['p99_ms']} | "
             f"{d['typo_latency_search_10']['p99_ms']} |" for d in s["by_dump"]), "",
           "| in-process, each query alone | p50 ms | p99 ms (target <= 5) | max ms |", "|---|---:|---:|---:|",
           row("typo queries, search(q, 10)", **t["latency_search_10"]),
           row("typo queries, the typo stage alone", **t["latency_typo_stage"]),
           row("typo queries, search with the typo stage off", **t["latency_search_10_typo_stage_off"]),
           row("exact keys, search(q, 10)", **u["exact"]["latency_search_10"]),
           row("key prefixes, search(q, 10)", **u["prefix"]["latency_search_10"]), "",
           "## Synthetic catalogs", "",
           "Memory: arrays and text held by the index (before typos: text, starts, order, words; typo: "
           "trigram postings, hashes, offsets, key lengths, word-character table); build peak: tracemalloc "
           "over the trigram build alone.", "",
           "| keys | build s | trigrams s | MB before typos | + MB typo | trigram build peak MB "
           "| typo search p50/p99 ms | same, typo stage off | typo stage p50/p99 ms | exact p50/p99 ms | hit@5 |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    pp = "{p50_ms} / {p99_ms}".format
    for s in r["scale"]:
        m, x = s["memory_mb"], s["typo"]
        out.append(f"| {s['keys']:,} | {s['build_s']} | {s['build_trigrams_s']} | {m['before_typos']} | "
                   f"{m['typo_trigrams']} | {m['trigram_build_peak_traced']} | {pp(**x['latency_search_10'])} | "
                   f"{pp(**x['latency_search_10_typo_stage_off'])} | {pp(**x['latency_typo_stage'])} | "
                   f"{pp(**s['exact_latency_search_10'])} | {x['hit_at_5']} |")
    return "\n".join(out) + "\n"


def say_scale(s: dict) -> None:
    m, t = s["memory_mb"], s["typo"]
    off = t["latency_search_10_typo_stage_off"]
    print(f"[{s['keys']:,} synthetic] build {s['build_s']} s (trigrams {s['build_trigrams_s']} s); memory: "
          f"{m['before_typos']} MB before typos + {m['typo_trigrams']} MB trigrams (build peak "
          f"{m['trigram_build_peak_traced']} MB); typo queries: search p50 {t['latency_search_10']['p50_ms']} "
          f"p99 {t['latency_search_10']['p99_ms']} ms (typo stage off: p50 {off['p50_ms']} p99 {off['p99_ms']}), "
          f"typo stage p50 {t['latency_typo_stage']['p50_ms']} p99 {t['latency_typo_stage']['p99_ms']} ms; "
          f"exact p99 {s['exact_latency_search_10']['p99_ms']} ms; hit@5 {t['hit_at_5']}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--sizes", default="100000,1000000", help="synthetic catalog sizes ('' for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-rev", default="HEAD", help="git revision of the search before typos")
    ap.add_argument("--out", type=Path, default=RESULTS / "search.json")
    args = ap.parse_args()
    from epgembed.build.ingest.catalog_build import build_catalog
    from epgembed.build.ingest.epg import read_programmes
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    command = "python bench/search.py " + " ".join(sys.argv[1:])
    paths = sorted(DUMPS.glob("*.xml*"))
    keys = list(build_catalog(read_programmes(paths)).keys)
    t0 = time.perf_counter()
    idx = TitleIndex(keys)
    cat = {"dumps": [p.name for p in paths], "keys": len(keys), "build_s": round(time.perf_counter() - t0, 3)}
    cat["typo"] = typo_figures(idx, keys, args.queries, random.Random(args.seed))
    t = cat["typo"]
    print(f"[{len(keys):,} real] hit@5 {t['hit_at_5']} hit@1 {t['hit_at_1']} {t['hit_at_5_by_kind']}; "
          f"search p50 {t['latency_search_10']['p50_ms']} ms p99 {t['latency_search_10']['p99_ms']} ms; "
          f"typo stage p99 {t['latency_typo_stage']['p99_ms']} ms", flush=True)
    cat["unchanged"] = u = unchanged_figures(idx, keys, args.queries, random.Random(args.seed + 1), args.baseline_rev)
    for name in ("exact", "prefix"):
        print(f"[{len(keys):,} real] {name}: {u[name]['same_answers']}/{u[name]['queries']} unchanged "
              f"({u['baseline']}), p50 {u[name]['latency_search_10']['p50_ms']} ms "
              f"p99 {u[name]['latency_search_10']['p99_ms']} ms", flush=True)
    del idx
    titles = [title_figures(p, args.seed) for p in paths]
    for d in titles:
        print(f"[{d['dump']}: {d['titles']:,} titles] exact title hit@1 {d['exact_title_hit_at_1']}, one typo "
              f"(from the 2nd character, {d['typo_titles']:,} titles of 5+) hit@5 {d['one_typo_hit_at_5']}", flush=True)
    cat["titles_as_shown"] = {
        "exact_title_hit_at_1": round(min(d["exact_title_hit_at_1"] for d in titles), 4),
        "one_typo_hit_at_5": round(sum(d["one_typo_hit_at_5"] * d["typo_titles"] for d in titles)
                                   / sum(d["typo_titles"] for d in titles), 4),
        "one_typo_hit_at_5_lowest_dump": round(min(d["one_typo_hit_at_5"] for d in titles), 4),
        "by_dump": titles}
    scale = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        gc.collect()
        scale.append(s := scale_figures(n, args.queries, args.seed))
        say_scale(s)
    report = {"command": command, "date": started,
              "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                          "python": platform.python_version(), "numpy": np.__version__},
              "targets": {"hit_at_5": 0.95, "p99_ms_at_12k": 5.0, "exact_title_hit_at_1": 1.0,
                          "one_typo_title_hit_at_5": 0.95},
              "args": vars(args) | {"out": str(args.out)}, "catalog": cat, "scale": scale}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(f"-> {args.out}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
