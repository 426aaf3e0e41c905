"""Title and category normalization: the ONE place where EPG text is cleaned.

`title_forms(raw)` is the entry point for titles: every form of one raw title (display,
exact, key, episode, series, search), and the only thing ingest, catalog lookup, the
tokenizer, title search, history and the query side call, so a title is turned into the
same key and the same tokens everywhere.

    title_forms("Show Ep. 4:.").key             -> "show"
    title_forms("Tatort: Borowski").series      -> "tatort"
    clean_text("Hey\u00a0Arnold!  S3 Ep. 42")   -> "Hey Arnold! S3 Ep. 42"
    strip_episode("Hey Arnold! S3 Ep. 42")      -> ("Hey Arnold!", "S3 Ep. 42")
    title_key("Rote Rosen (3608)")              -> "rote rosen"
    normalize_category(" News ")                -> "news"
    normalize_category("No information available") -> None
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Invisible or spacing characters that real feeds put inside titles.
_INVISIBLE = "\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u3000"
_INVISIBLE_MAP = {ord(c): " " for c in _INVISIBLE}
_DASHES = {ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"}
_WS = re.compile(r"\s+")
MAX_TITLE_CHARS = 500        # a title's text is cut here: no real title is longer (121 at most)
MAX_RAW_TITLE_CHARS = 1000   # a programme whose raw title is longer is skipped by ingest (a
                             # catalog holding one is refused): junk, not a title to cut

# Trailing episode / part / meta markers. Applied repeatedly from the end.
_SEP = r"(?:\s*[-:,|/.\u2013\u2014]\s*|\s+)"
_NUM = r"\d{1,5}"
# S3 Ep. 42 / S03E05 / S1 E5 / S1, E5 / S01 Episode 4 / Season 2 Episode 3 / T2, E5
_SEASON_EPISODE = (rf"(?:s|t|season|staffel|saison|temporada|stagione)\s*\.?\s*{_NUM}\s*[,.]?\s*"
                   rf"(?:e|ep|episode|épisode|episodio|folge|f)\s*\.?\s*{_NUM}")
# Episode 4 / Ep. 4 / Folge 12 / Staffel 2
_EPISODE_WORD = (rf"(?:episode|épisode|episodio|episódio|ep|eps|folge)"
                 rf"\s*\.?\s*(?:{_NUM}|[ivxlc]+)(?:\s*(?:/|of|von|de|sur)\s*{_NUM})?")
# E05 / #12 / Nr. 3
_EPISODE_NUMBER = rf"(?:e|#|nr\.?|no\.?|n°)\s*{_NUM}"
_EPISODE_MARKERS = f"{_SEASON_EPISODE}|{_EPISODE_WORD}|{_EPISODE_NUMBER}"
_EPISODE_PATTERNS = [
    _SEASON_EPISODE,
    _EPISODE_WORD,
    # Teil 2 / Part 2 / Parte 1 / Partie 3 / Chapter 2 / Kapitel 3 (not in brackets:
    # "Episode (Teil 1)" and "(Teil 2)" are two programmes of one episode title). Never
    # "Vol. 2", "Season 3" or a bare number: they name another film or show.
    rf"(?:teil|part|parte|partie|chapter|kapitel|capítulo|capitulo)\s*\.?\s*(?:{_NUM}|[ivxlc]+)(?:\s*(?:/|of|von|de|sur)\s*{_NUM})?",
    _EPISODE_NUMBER,
    # a bracket of nothing but episode numbering: (S2 E5) / [S02E05] / (Staffel 2, Folge 5) / (Ep. 3)
    rf"[(\[]\s*(?:{_EPISODE_MARKERS})(?:\s*[,/;]?\s*(?:{_EPISODE_MARKERS}))*\s*[)\]]",
    # (3608) / (1.3) / (1/3) / [12] / (12-13)
    rf"[(\[]\s*{_NUM}(?:\s*[./\-]\s*{_NUM})?\s*[)\]]",
    # bracketed or dashed meta information: (HD) [OmU] (Wh.) - Live
    r"[(\[]\s*(?:hd|uhd|4k|sd|3d|omu|ov|ome|vo|vost|vostfr|vf|vos|sub|subs|subtitled|wh|wdh|whg|new|neu|nouveau|nuevo|repeat|rpt|stereo|16:9|ad|cc|dolby|dt|ut|engl|english)\.?\s*[)\]]",
]
# A time of day before the title ("11am: Noticiero", "9:30am - ...", "20:15 | ..."): a
# schedule's note, not part of the show's name ("24: Live Another Day" keeps its "24").
_TIME_PREFIX = re.compile(
    r"^(?:\d{1,2}[:.h]\d{2}\s*(?:am|pm|a\.m\.|p\.m\.|uhr|h)?|\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.))"
    r"\s*(?:[:|\-\u2013\u2014]\s+|\s*[:|]\s*)(?=\S)", re.IGNORECASE)
# A title that is only an episode's number, without the show's name ("Episode 17",
# "Series 20 Ep 19 with ...", "Show 15"): no show of its own.
_BARE_EPISODE = re.compile(
    rf"^(?:(?:series|season|staffel|saison|temporada|s)\s*\.?\s*{_NUM}\s*[,.]?\s*(?:ep|episode|e|folge)\s*\.?\s*{_NUM}"
    rf"|(?:episode|épisode|episodio|ep|folge|show|part|teil|chapter|programme|program)\s*\.?\s*#?{_NUM})\b",
    re.IGNORECASE)
_TRAILING = re.compile(
    rf"(?:{_SEP}|^)(?:{'|'.join(_EPISODE_PATTERNS)})\s*[)\].!:,-]?\s*$", re.IGNORECASE
)

PLACEHOLDER_CATEGORIES = frozenset(
    {
        "", "-", "--", "?", "n/a", "na", "n.a.", "none", "null", "nil", "unknown", "undefined",
        "no information available", "no information", "not available", "no category",
        "uncategorized", "uncategorised", "unclassified", "tbd", "tba", "other", "others",
        "misc", "miscellaneous", "various", "keine angabe", "keine angaben", "unbekannt",
        "sonstiges", "sonstige", "non disponible", "inconnu", "autre", "autres",
        "desconocido", "sin información", "sin informacion", "otros", "general",
    }
)


def clean_text(text: str | None, keep_dashes: bool = False) -> str:
    """NFKC, invisible characters -> space, leftover entities decoded, whitespace collapsed;
    a text of combining marks only becomes "" (it shows nothing).

    Dashes (en, em, minus, ...) become "-" unless keep_dashes (display titles keep the
    feed's spelling; keys and tokens do not care which dash a feed used)."""
    if not text:
        return ""
    text = _clean_once(text[: MAX_TITLE_CHARS * 4], keep_dashes)
    for _ in range(8):  # NFKC can make a new entity ("\uff06amp;" -> "&amp;"): idempotent
        if "&" not in text:
            break
        again = _clean_once(text, keep_dashes)
        if again == text:
            break
        text = again
    return text


def _clean_once(text: str, keep_dashes: bool) -> str:
    while "&" in text:  # double-escaped feeds show "&apos;" literally: decode to the end
        decoded = html.unescape(text)  # (each change shortens the text, so this ends)
        if decoded == text:
            break
        text = decoded
    text = text.translate(_INVISIBLE_MAP)
    text = unicodedata.normalize("NFKC", text)
    if not keep_dashes:
        text = text.translate(_DASHES)
    if not text.isprintable():
        text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    text = _WS.sub(" ", text).strip()
    if not text.isascii() and all(c == " " or unicodedata.category(c)[0] == "M" for c in text):
        return ""  # combining marks with nothing to combine with: no visible text
    return text[:MAX_TITLE_CHARS].strip()


def strip_episode(text: str) -> tuple[str, str]:
    """Split trailing episode markers off a cleaned title: (series, episode_part).

    Markers are removed repeatedly from the end ("Sissi - Teil 2 (HD)" -> "Sissi").
    A title that is nothing but a marker ("Folge 12") is kept whole.
    """
    series = text
    while True:
        m = _TRAILING.search(series)
        if not m or m.start() == 0 or _unclosed(series[: m.start()]):
            break                 # (never cut inside a bracket: "Foo (X, E5)" stays whole)
        series = series[: m.start()].rstrip(" -:,|/\u2013\u2014")
    series = series.strip()
    if not series:
        return text, ""
    episode = text[len(series):].strip(" -:,|/\u2013\u2014")
    return series, episode


def _unclosed(text: str) -> bool:
    return text.count("(") > text.count(")") or text.count("[") > text.count("]")


def fold(text: str) -> str:
    """Case-folded form used for keys and tokens (NFKC again where case folding undid it,
    e.g. "ß\u0301" -> "ss\u0301" -> "sś"), so fold(fold(x)) == fold(x)."""
    out = text.casefold()
    if not out.isascii():
        for _ in range(4):
            again = unicodedata.normalize("NFKC", out).casefold()
            if again == out:
                break
            out = again
    return out


@dataclass(frozen=True, slots=True)
class TitleForms:
    """Every form of one raw title."""
    display: str        # cleaned, dashes kept: the feed's own spelling, as aired
    exact: str          # cleaned and case-folded, episode markers kept: a key as spelled
    key: str            # the catalog key (title_key): no time prefix, no episode markers
    episode: str        # the episode marker that the key lost ("" for none)
    series: str | None  # the prefix of a "Series: Episode" key (None: the key has no separator)
    search: str         # `exact` without accents: what title search matches


# cached: one query needs its forms up to four times (check, lookup, answer filter, tokens)
@lru_cache(maxsize=1 << 16)
def title_forms(title: str | None) -> TitleForms:
    """All forms of a raw title (see TitleForms); `title_forms(t).key == title_key(t)`."""
    cleaned = clean_text(title)
    exact = _exact(cleaned)
    key = title_key(title)
    split = split_series(key)
    return TitleForms(display=clean_text(title, keep_dashes=True), exact=exact, key=key,
                      episode=strip_episode(drop_time_prefix(cleaned).rstrip(" -:,|/."))[1],
                      series=split[0] if split else None, search=unaccent(exact))


def _exact(cleaned: str) -> str:
    """Case-folded, ends trimmed; repeated until it is its own exact form ("&NBSP;")."""
    exact = fold(cleaned).strip(" -:,|/.")
    for _ in range(len(exact) + 1):
        if exact.isascii() and "&" not in exact:
            break
        again = fold(clean_text(exact)).strip(" -:,|/.")
        if again == exact:
            break
        exact = again
    return exact


@lru_cache(maxsize=1 << 16)
def title_key(title: str | None) -> str:
    """The catalog key of a raw title: cleaned, a time-of-day prefix and trailing episode
    markers stripped, case-folded.

    A key is its own key (title_key(title_key(x)) == title_key(x)): when one pass could
    leave something a second pass would change (a marker exposed by the final strip,
    "Show Ep. 4:."; non-ASCII text that case folding lengthens or un-normalizes; an entity
    name that folding makes decodable, "&NBSP;"), passes repeat until nothing changes (one per marker: "A #2.. #3.. #2..")."""
    folded = fold(strip_episode(drop_time_prefix(clean_text(title)))[0])
    key = _cut(folded)
    if key == folded and key.isascii() and "&" not in key:
        return key
    for _ in range(len(key) + 1):  # a change only ever shortens the key, so this ends
        again = _cut(fold(strip_episode(drop_time_prefix(clean_text(key)))[0]))
        if again == key:
            break
        key = again
    return key


def drop_time_prefix(text: str) -> str:
    """"11am: Noticiero Telemundo" -> "Noticiero Telemundo" (a cleaned text)."""
    m = _TIME_PREFIX.match(text)
    return text[m.end():] if m else text


def unaccent(text: str) -> str:
    """`text` without its accents ("zürich" -> "zurich"), for matching that forgives them."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def is_bare_episode(key: str) -> bool:
    """A key that is only an episode's number ("episode 17", "series 20 ep 19 with ...")."""
    return bool(_BARE_EPISODE.match(key))


def squash(key: str) -> str:
    """A key without punctuation and spaces: two spellings of one show squash alike
    ("star trek: deep space nine", "star trek - deep space nine")."""
    return _NON_ALNUM.sub("", key)


_NON_ALNUM = re.compile(r"[\W_]+")


def series_head(key: str) -> str:
    """The part of a key before its first ":" or " - " (the whole key when there is
    none): answers with the query's head are of its own series."""
    head = _HEAD.split(key, maxsplit=1)[0].strip()
    return head or key


_HEAD = re.compile(r":| - | \| | \u2013 | \u2014 ")


def _cut(key: str) -> str:
    return key.strip(" -:,|/.")[:MAX_TITLE_CHARS].rstrip(" -:,|/.")


def split_series(key: str) -> tuple[str, str] | None:
    """Split a key at its first `: ` or ` - ` into (prefix, suffix), or None.

    Whether the prefix is really a series is decided from the data (catalog.py).
    """
    best = None
    for sep in (": ", " - ", " | ", " \u2013 ", " \u2014 "):
        i = key.find(sep)
        if i > 0 and (best is None or i < best[0]):
            best = (i, len(sep))
    if best is None:
        return None
    i, n = best
    prefix, suffix = key[:i].strip(), key[i + n:].strip()
    if not prefix or not suffix:
        return None
    return prefix, suffix


def normalize_category(category: str | None) -> str | None:
    """Case-folded, trimmed category, or None for placeholders (idempotent, like title_key)."""
    c = _category_once(category)
    for _ in range(len(c or "") + 1):
        if c is None or (c.isascii() and "&" not in c):
            break
        again = _category_once(c)
        if again == c:
            break
        c = again
    return c


def _category_once(category: str | None) -> str | None:
    c = fold(clean_text(category)).strip(" .;,")
    if c in PLACEHOLDER_CATEGORIES or len(c) > 100:
        return None
    return c
