"""Property tests (hypothesis) for the title normalizer, the tokenizer and the query side.

- normalize: total on any text (control characters, invisible characters, entities,
  combining marks, very long strings) and idempotent where that is the contract:
  clean_text, title_key, strip_episode's series, normalize_category, fold;
- Tokenizer (a tiny one trained once per module): encodes anything, every id a real token
  (never PAD, never sentencepiece's unknown piece), the query side equal to the training side;
- "the service accepts whatever the normalizer accepts": RelatedModel.related and
  GET /v1/related answer every title whose key is non-empty.

make test runs a small deterministic profile; EPGEMBED_FUZZ=1 (make fuzz) a large random one.
No example database is written (tests never write into the working directory).
"""
from __future__ import annotations

import math
import os
import tempfile
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from guide import GENRES
from epgembed.config import TokenizerConfig
from epgembed.query.requests import Options
from epgembed.text.normalize import (MAX_TITLE_CHARS, clean_text, fold, normalize_category, split_series,
                                     is_bare_episode, strip_episode, title_forms, title_key)
from epgembed.build.ingest.catalog_build import build_catalog
from epgembed.build.ingest.epg import Programme
from epgembed.query.errors import QueryError
from epgembed.text.tokenize import PAD_ID, Tokenizer, token_text

pytestmark = pytest.mark.integration

FUZZ = os.environ.get("EPGEMBED_FUZZ") == "1"       # read here only: `make fuzz` sets it
# hypothesis keeps caches (constants, unicode tables) in ./.hypothesis even without an example
# database: point it at a temporary folder (tests never write into the working directory)
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="epgembed-hypothesis-"))
_COMMON = dict(deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TEXT = settings(max_examples=20_000 if FUZZ else 300, derandomize=not FUZZ, **_COMMON)
MODEL = settings(max_examples=3_000 if FUZZ else 100, derandomize=not FUZZ, **_COMMON)

# Pieces of real EPG titles and of the normalizer's corner cases, mixed with arbitrary text.
FRAGMENTS = [
    "Tatort", "Hey Arnold!", "S3 Ep. 42", "S01E05", "(3608)", "(1/3)", "Folge 12", "Teil 2", "Nr. 3", "#12",
    "e5", "(HD)", "[OmU]", "Live", ":", " - ", " | ", ".", "-", "/", ",", "&amp;", "&apos;", "&amp;amp;amp;",
    "&#160;", "&lt;", "&nbsp;", "&NBSP;", "&AMP;", "&Amp;", "&QUOT", "&Lt;", "\uff06amp;", "&", "\u00a0", "\u200b", "\ufeff", "\u00ad", "\u3000", "\u2011",
    "\u2013", "\u2212", "\u0130", "\u00df", "\u00df\u0301", "\ufb01", "\u0301", "\u00b4", "\u2167", "\uff34\uff36",
    "#2.....", "#3...", "\x00", "\x07", "\x1b", "\x85", "\u2028", "\U0001f3ac", "\u4e2d\u6587", "\u0627\u0644", "  ", "\t", "\n",
]
epg_titles = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=14).map("".join)
long_titles = st.tuples(st.text(min_size=1, max_size=12), st.integers(50, 2_500)).map(lambda t: t[0] * t[1])
any_text = st.one_of(epg_titles, st.text(), long_titles)


def printable_clean(s: str) -> bool:
    return s == s.strip() and "  " not in s and all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in s)


@TEXT
@given(any_text, st.booleans())
def test_clean_text_total_bounded_idempotent(x, keep_dashes):
    c = clean_text(x, keep_dashes=keep_dashes)
    assert isinstance(c, str) and len(c) <= MAX_TITLE_CHARS and printable_clean(c)
    assert clean_text(c, keep_dashes=keep_dashes) == c


@TEXT
@given(any_text)
def test_title_key_idempotent(x):
    k = title_key(x)
    assert len(k) <= MAX_TITLE_CHARS and printable_clean(k)
    assert title_key(k) == k and title_key(clean_text(x)) == k
    assert fold(k) == k


@TEXT
@given(any_text)
def test_strip_episode_series_is_a_fixed_point(x):
    text = clean_text(x)
    series, episode = strip_episode(text)
    assert text.startswith(series) and (series or not text)
    assert strip_episode(series)[0] == series
    assert episode == "" or episode in text


@TEXT
@given(any_text)
def test_split_series_parts(x):
    key = title_key(x)
    parts = split_series(key)
    if parts is not None:
        prefix, suffix = parts
        assert prefix and suffix and prefix == prefix.strip() and suffix == suffix.strip()
        assert key.startswith(prefix) and key.endswith(suffix) and len(prefix) + len(suffix) < len(key)


@TEXT
@given(any_text)
def test_normalize_category_idempotent(x):
    c = normalize_category(x)
    assert c is None or (0 < len(c) <= 100 and normalize_category(c) == c)


@TEXT
@given(any_text)
def test_fold_idempotent(x):
    assert fold(fold(x)) == fold(x)


# ---------------------------------------------------------------- tokenizer
@TEXT
@given(any_text)
def test_ingest_key_is_lookup_key(x):
    """A title becomes the item whose key its lookup computes (normalize.title_forms is the one
    entry point of both): built alone into a catalog, it is found again by its own text."""
    forms = title_forms(x)
    assume(forms.key and not is_bare_episode(forms.key))
    catalog = build_catalog([Programme(x, None, None, ("news",), "c1", "20260101000000 +0000", "x.xml", 1)])
    assert catalog.keys == [forms.key] and catalog.lookup(x) == 0


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    titles = [t for ts in GENRES.values() for t in ts]
    return Tokenizer.train(titles, TokenizerConfig(), contexts=[f"{t} tonight on one" for t in titles])


@MODEL
@given(x=any_text)
def test_tokenizer_encodes_anything_to_real_tokens(tokenizer, x):
    ids = tokenizer.encode(x)
    unknown = 1 + tokenizer.sp.unk_id()
    assert all(isinstance(i, int) and PAD_ID < i < tokenizer.vocab_size and i != unknown for i in ids)
    assert len(ids) <= tokenizer.cfg.max_tokens
    assert bool(ids) == bool(token_text(x))            # byte fallback: any text has pieces
    assert all(tokenizer.token_name(i) for i in ids)   # every id names a token
    row, weights = tokenizer.encode_items([x], [""])   # the training side agrees with the query side
    assert row[0][weights[0] > 0].tolist() == ids


# ---------------------------------------------------------------- query side and service
@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from epgembed.query.load import load_model
    return load_model(tiny_model_dir)


@MODEL
@given(x=any_text)
def test_related_answers_every_title_with_a_key(model, x):
    try:
        r = model.related(x, Options(k=5))
    except QueryError:
        assert not any(c.isalnum() for c in title_key(x)), x   # only a title without a letter or digit
        return
    assert len(r.related) <= 5 and all(math.isfinite(h.score) and -1.001 <= h.score <= 1.001 for h in r.related)
    assert r.query.id is None or r.query.id not in [h.id for h in r.related]
    if not r.query.known:
        assert np.isfinite(model.embed(x)).all()


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    from handmade import make_app
    return make_app(tiny_model_dir).test_client()


@MODEL
@given(x=st.one_of(epg_titles, st.text(max_size=40), long_titles.map(lambda s: s[:MAX_TITLE_CHARS])))
def test_service_accepts_what_the_normalizer_accepts(client, x):
    r = client.get("/v1/related", query_string={"title": x, "k": 3})
    assert r.status_code < 500, (x, r.status_code, r.get_data(as_text=True)[:300])
    if any(c.isalnum() for c in title_key(x)) and len(x) <= MAX_TITLE_CHARS:
        assert r.status_code == 200, (x, r.get_data(as_text=True)[:300])
        assert len(r.get_json()["related"]) <= 3
