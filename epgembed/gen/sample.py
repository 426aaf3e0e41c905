"""The project's own embedded sample guide: a deterministic, invented XMLTV generator.

    python -m epgembed.gen.sample data/sample.xml.gz [--seed 0] [--days 7] [--channels 19]

Every title, word and sentence (epgembed/gen/sample_text.py) was written for this project (nothing is taken from real
dumps). The output imitates real feeds (SOURCES.md): episode markers inside titles, `Series: Episode`
titles, fixed titles that merely contain a colon, meta suffixes, regional repeats, noisy multi-language
categories, placeholders, missing categories, a BOM, NBSP / zero-width spaces, a double-escaped
`&apos;`, en dashes, `#`, `★` and full-width characters. Same seed -> byte-identical file.
"""
from __future__ import annotations

import argparse
import gzip
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape as _esc

from epgembed.gen.sample_text import CATS, DESC, TITLES, WORDS

FORCED_COLON = {"Kommissarin Lund": ": ", "Kitchen Heroes": ": ", "Wild Planet": ": ", "Weltreise": " – ",
                "Galaxy Patrol": ": ", "Enquêtes à Marseille": " : "}  # `Series: Episode` shows
FORCED_STYLE = {"Tiny Trucks": "sxep", "Mordkommission Hamburg": "num", "Kripo Lüneburg": "sdote",
                "Die Waldwichtel": "folge", "Das Geheimnis der Mühle": "teil", "Las Aventuras de Tito": "capitulo"}
# channel: id, display name, title languages, genres, category style, flags
CHANNELS = [
    ("one.syd.au", "Channel One Sydney", "en", "news crime comedy quiz reality movies cooking", "au",
     "hd night regional"),
    ("arena.sport", "Arena Sport", "en de fr es", "sport", "au", "hd"),
    ("dasdritte.de", "Das Dritte", "de", "news crime doc travel sport quiz history music comedy", "de", "lang"),
    ("64b1c0de5ac1f300082a6d11", "Pluto TV Krimi", "de en", "crime movies", "pluto", "omu"),
    ("kidzplanet.us", "Kidz Planet", "en", "kids", "au", ""),
    ("wildearth.au", "Wild Earth", "en", "doc history travel", "au", "hd"),
    ("5d7f3a91c2e4b70009a1f0b2", "Orbit TV", "en", "scifi movies", "pluto", "fullwidth"),
    ("5e1b9c04d8a7f6000731c4e8", "Hitwave", "en de es fr", "music", "pluto", ""),
    ("kochkanal.de", "Kochkanal", "de", "cooking reality shopping", "pluto", "lang"),
    ("kinderland.de", "Kinderland", "de fr", "kids", "de", "lang"),
    ("cinefrisson.fr", "Ciné Frisson", "fr", "movies crime scifi comedy", "pluto", ""),
    ("planete.fr", "Planète Découverte", "fr", "doc history travel cooking news reality quiz music", "pluto", ""),
    ("canalrisa.es", "Canal Risa", "es", "news sport kids doc crime comedy cooking reality quiz music history "
     "travel movies", "pluto", ""),
    ("laughfactory.us", "Laugh Factory", "en", "comedy cooking reality quiz", "pluto", ""),
    ("shop24.tv", "Shop 24", "en de fr", "shopping", "au", ""),
    ("alpentv.at", "Alpen TV", "de", "doc travel history music comedy quiz", "de", "lang hd"),
]
REGIONS = ["Melbourne", "Brisbane", "Perth", "Adelaide"]  # regional copies of the first channel
DURATIONS = {"news": (15, 30, 30, 60), "sport": (60, 90, 120), "kids": (15, 25, 30), "doc": (45, 50, 60),
             "crime": (45, 60, 90), "comedy": (25, 30), "cooking": (30, 45, 60), "reality": (60, 90),
             "quiz": (30, 45, 60), "scifi": (45, 60), "music": (60, 120), "history": (45, 60),
             "travel": (30, 45, 60), "shopping": (30, 60), "movies": (90, 95, 105, 120)}
EPISODE_WORDS = {"crime": None, "scifi": None, "kids": "light", "comedy": "light", "reality": "light",
                 "cooking": "cooking", "doc": "places", "travel": "places", "history": "places"}
STYLES = {"en": "plain plain plain sxep sxxexx sxxexx num colon", "de": "plain plain plain folge folge num sdote colon",
          "fr": "plain plain sxxexx episode colon", "es": "plain plain capitulo colon"}
COLON_GENRES = {"crime", "scifi", "cooking", "doc", "travel", "history"}
PLACEHOLDER = "No information available"
LANGS = ("en", "de", "fr", "es")
START = datetime(2026, 1, 1, 6, 0)
DEFAULT_CHANNELS = len(CHANNELS) + 3


def _table(text: str) -> dict[str, str]:
    """`key rest` lines; indented lines continue the previous one."""
    out: dict[str, str] = {}
    for line in text.strip("\n").splitlines():
        if line.startswith(" "):
            out[key] += line.strip() if line.strip().startswith("|") else " " + line.strip()
        else:
            key, _, out[key] = line.partition(" ")
    return out


def _fields(text: str) -> dict[str, list[list[str]]]:
    """Whitespace-separated fields, each split at `|`; `_` stands for a space."""
    return {k: [f.replace("_", " ").split("|") for f in v.split()] for k, v in _table(text).items()}


TITLE_TABLE, CAT_TABLE, DESC_TABLE, WORD_TABLE = _table(TITLES), _fields(CATS), _table(DESC), _fields(WORDS)


@dataclass
class SampleShow:  # one invented show and its episode counters (not catalog.Show)
    title: str; genre: str; sub: str | None; lang: str; style: str; sep: str = ": "  # noqa: E702
    season: int = 1; ep: int = 0; count: int = 0; base: int = 0; variant: int = 0  # noqa: E702


@dataclass
class Channel:
    cid: str; name: str; langs: list[str]; genres: list[str]; style: str; flags: set[str]  # noqa: E702
    region: str | None = None; mirror_of: Channel | None = None  # noqa: E702
    shows: list[SampleShow] = field(default_factory=list)


def _build_shows(rng: random.Random) -> list[SampleShow]:
    shows, lang = [], "en"
    for key, titles in TITLE_TABLE.items():
        genre, _, sub = key.partition(".")
        for i, title in enumerate(titles.split("|")):
            lang, title = (title[1:3], title[4:]) if title.startswith("@") else ("en" if i == 0 else lang, title)
            if title in FORCED_COLON or title in FORCED_STYLE:
                style = FORCED_STYLE.get(title, "colon")
            elif genre in EPISODE_WORDS:
                style = rng.choice([s for s in STYLES[lang].split()
                                    if s != "colon" or genre in COLON_GENRES and ":" not in title])
            elif genre == "quiz":
                style = rng.choice(["plain"] * 5 + ["num"])
            else:
                style = "teil" if genre == "movies" and rng.random() < 0.08 else "plain"
            shows.append(SampleShow(title, genre, sub or None, lang, style, FORCED_COLON.get(title, ": "),
                                    season=rng.randint(1, 6), base=rng.randint(40, 4000), variant=rng.randrange(7)))
    return shows


def _channels(n_channels: int) -> list[Channel]:
    if not 1 <= n_channels <= len(CHANNELS) + len(REGIONS):
        raise ValueError(f"n_channels must be in 1..{len(CHANNELS) + len(REGIONS)}")
    out = [Channel(c[0], c[1], c[2].split(), c[3].split(), c[4], set(c[5].split())) for c in CHANNELS[:n_channels]]
    one = out[0]
    one.region = "Sydney" if "regional" in one.flags else None
    return out + [Channel(f"one.{r[:3].lower()}.au", f"Channel One {r}", one.langs, one.genres, one.style, one.flags,
                          region=r, mirror_of=one) for r in REGIONS[: max(0, n_channels - len(CHANNELS))]]


def _words(rng: random.Random, kind: str, n: int = 0) -> str:
    fields = WORD_TABLE[kind]
    return fields[2][0].format(a=rng.choice(fields[0]), b=rng.choice(fields[1])).format(n=n)


def _airing(rng: random.Random, show: SampleShow) -> tuple[str, str | None, str | None]:
    """Title (with its episode marker), sub-title and xmltv_ns episode number of the show's next airing."""
    show.count, show.ep = show.count + 1, show.ep + 1
    if show.ep > 13:
        show.season, show.ep = show.season + 1, 1
    s, e, t, n = show.season, show.ep, show.title, show.base + show.count
    kind = EPISODE_WORDS.get(show.genre, "-") or show.lang
    ep_title = _words(rng, kind) if kind != "-" else None
    title = {"plain": t, "sxep": f"{t} S{s} Ep. {e}", "sxxexx": f"{t} S{s:02}E{e:02}", "num": f"{t} ({n})",
             "sdote": f"{t} ({s}.{e})", "folge": f"{t} – Folge {n % 300 + 1}", "teil": f"{t} – Teil {e % 3 + 1}",
             "episode": f"{t} - Épisode {n % 90 + 1}", "capitulo": f"{t} Capítulo {n % 120 + 1}",
             "colon": f"{t}{show.sep}{ep_title}"}[show.style]
    sub = None
    if show.style == "colon":
        sub = None if rng.random() < 0.7 else f"Folge {e}" if show.lang == "de" else f"Episode {e}"
    elif ep_title and rng.random() < 0.7:
        sub = ep_title
    elif show.genre == "sport" and rng.random() < 0.6:
        sub = _words(rng, f"sport/{show.lang}", rng.randint(1, 34))
    elif show.genre == "shopping":
        sub = _words(rng, "shopping")
    return title, sub, f"{s - 1}.{e - 1}." if show.style in ("sxep", "sxxexx", "sdote") else None


def _mess(rng: random.Random, title: str, ch: Channel, show: SampleShow) -> str:
    """Per-airing meta suffixes and text noise."""
    r = rng.random()
    if show.genre == "sport" and r < 0.3 or show.genre == "news" and r < 0.08:
        title += " - Live"
    elif "hd" in ch.flags and r < 0.2:
        title += " (HD)"
    elif "omu" in ch.flags and show.genre == "movies" and show.lang != "de" and r < 0.5:
        title += " [OmU]"
    elif ch.style == "de" and r < 0.05:
        title += " (Wh.)"
    if "fullwidth" in ch.flags and rng.random() < 0.04:
        title = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in title)
    r = rng.random()
    if r < 0.03:
        title = title.replace(" ", "\u00a0", 1)
    elif r < 0.04:
        title = title.replace(" ", "\u200b ", 1)
    elif r < 0.05:
        title = title.replace(" ", "  ", 1) + " "
    return title


def _categories(rng: random.Random, show: SampleShow, ch: Channel) -> list[str]:
    if rng.random() < 0.05:
        return []
    german = ch.style == "de" and rng.random() < 0.8
    pool = CAT_TABLE[show.genre][german]
    if ch.style == "pluto" and rng.random() < 0.2:  # Pluto assigns genres per channel
        pool = CAT_TABLE[ch.genres[0]][0]
    cats = [rng.choice(pool)]
    if show.sub or show.genre == "movies":
        subs = CAT_TABLE[show.sub or "moviegenre"][german]
        cats.append(subs[show.variant % len(subs)] if show.genre == "movies" else rng.choice(subs))
    if rng.random() < 0.25:
        cats.append(rng.choice(pool))
    broad = {"pluto": 0.95, "au": 0.75, "de": 0.5}[ch.style]
    if show.genre in ("news", "sport", "shopping", "movies") and ch.style != "pluto":
        broad = 0.15
    if rng.random() < broad:
        cats.insert(rng.choice((0, len(cats))), "Serie" if german else "Series")
    if ch.style == "au" and show.genre in ("doc", "travel", "cooking", "shopping", "history") and rng.random() < .5:
        cats.append("Special Interest")
    if ch.style == "pluto" and rng.random() < 0.04:
        cats = [PLACEHOLDER] if rng.random() < 0.5 else cats + [PLACEHOLDER]
    return list(dict.fromkeys(cats))[:4]


def _schedule(rng: random.Random, ch: Channel, night: SampleShow, end: datetime) -> list[tuple]:
    """One base channel's week: every show once, then a weighted shuffle; shopping overnight on `night` channels."""
    unique = rng.sample(ch.shows, len(ch.shows))
    extra = [s for s in ch.shows for _ in range(6 if s.title in FORCED_COLON else rng.choice((1, 1, 2, 2, 3, 4, 6)))]
    playlist, i, t, out = unique, 0, START, []
    while t < end and ch.shows:
        if "night" in ch.flags and 1 <= t.hour < 6:
            show, minutes = night, 30
        else:
            if i >= len(playlist):
                playlist, i = rng.sample(extra, len(extra)), 0
            show, i, minutes = playlist[i], i + 1, rng.choice(DURATIONS[playlist[i].genre])
        title, sub, ns = _airing(rng, show)
        if ch.region and show.genre == "news":
            title += " {region}"  # local news: filled in per regional channel
        cats = _categories(rng, show, ch)
        desc = DESC_TABLE[show.genre].split("|")[LANGS.index(show.lang)] if rng.random() < 0.8 else None
        out.append((t, t + timedelta(minutes=minutes), show, _mess(rng, title, ch, show), sub, desc, cats, ns))
        t += timedelta(minutes=minutes)
    return out


def generate(*, seed: int = 0, days: int = 7, n_channels: int = DEFAULT_CHANNELS) -> tuple[str, dict]:
    """The sample guide as XML text (starting with a BOM) and its counts."""
    rng = random.Random(seed)
    shows, channels = _build_shows(rng), _channels(n_channels)
    bases = [c for c in channels if c.mirror_of is None]
    for show in shows:  # each show lives on one channel (sometimes two), preferably one in its language
        fits = [c for c in bases if show.genre in c.genres and show.lang in c.langs] or \
               [c for c in bases if show.genre in c.genres]
        for c in rng.sample(fits, min(len(fits), 2 if rng.random() < 0.15 else 1)):
            c.shows.append(show)
    night = next(s for s in shows if s.title == "Home Shopping")
    rows = {c.cid: _schedule(rng, c, night, START + timedelta(days=days)) for c in bases}
    lines = ['\ufeff<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE tv SYSTEM "xmltv.dtd">',
             '<tv generator-info-name="epgembed.gen.sample" source-info-name="invented sample guide">']
    for ch in channels:
        lines += [f'  <channel id="{ch.cid}">', f"    <display-name>{_esc(ch.name)}</display-name>", "  </channel>"]
    seen = []
    for ch in channels:  # regional channels repeat the network at the same times; only local news differs
        lang = f' lang="{ch.langs[0]}"' if "lang" in ch.flags else ""
        for start, stop, show, title, sub, desc, cats, ns in rows[(ch.mirror_of or ch).cid]:
            title = title.replace("{region}", ch.region or "")
            seen.append((title, show))
            lines += [f'  <programme start="{start:%Y%m%d%H%M%S} +0000" stop="{stop:%Y%m%d%H%M%S} +0000" '
                      f'channel="{ch.cid}">', f"    <title{lang}>{_esc(title)}</title>"]
            lines += [f"    <sub-title{lang}>{_esc(sub)}</sub-title>"] if sub else []
            lines += [f"    <desc{lang}>{_esc(desc)}</desc>"] if desc else []
            lines += [f"    <category>{_esc(c)}</category>" for c in cats]
            lines += [f'    <episode-num system="xmltv_ns">{ns}</episode-num>'] if ns else []
            lines.append("  </programme>")
    lines.append("</tv>\n")
    counts = {"seed": seed, "days": days, "channels": len(channels), "programmes": len(seen),
              "distinct_titles": len({t for t, _ in seen}), "shows": len({(s.title, s.lang) for _, s in seen}),
              "genres": len({s.genre for _, s in seen})}
    return "\n".join(lines), counts


def write_sample(path, *, seed: int = 0, days: int = 7, n_channels: int = DEFAULT_CHANNELS) -> dict:
    """Write the sample guide to `path` (gzip when it ends with .gz, header mtime 0); return its counts."""
    text, counts = generate(seed=seed, days=days, n_channels=n_channels)
    data, path = text.encode("utf-8"), Path(path)
    if path.name.endswith(".gz"):  # no file name and mtime 0 in the header: same seed, same bytes
        with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(data)
    else:
        path.write_bytes(data)
    return {**counts, "bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m epgembed.gen.sample", description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="data/sample.xml.gz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--channels", type=int, default=DEFAULT_CHANNELS)
    args = ap.parse_args(argv)
    counts = write_sample(args.path, seed=args.seed, days=args.days, n_channels=args.channels)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
