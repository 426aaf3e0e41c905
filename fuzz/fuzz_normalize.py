"""atheris (libFuzzer) harness: the title normalizer and the tokenizer on arbitrary text.

    .venv/bin/python fuzz/fuzz_normalize.py -max_total_time=60 -artifact_prefix=/tmp/x/ /tmp/x/corpus

Checks what tests/test_fuzz_text.py checks with hypothesis, coverage-guided: no exception,
clean_text / title_key / normalize_category / fold idempotent, strip_episode's series a
fixed point, every token id real. Run by `make fuzz` for a bounded time.
"""
import sys

import atheris

with atheris.instrument_imports():
    from epgembed.config import TokenizerConfig
    from epgembed.text.normalize import (clean_text, fold, normalize_category, split_series, strip_episode,
                                         title_key)
    from epgembed.text.tokenize import Tokenizer

TITLES = ["Football Tonight", "Tennis Weekly", "Morning News", "World News Today", "Puppy Club",
          "Dragon Friends", "Kitchen Heroes", "Baking Masters", "Hey Arnold! S3 Ep. 42", "Rote Rosen (3608)"]
TOKENIZER = Tokenizer.train(TITLES, TokenizerConfig(min_vocab=60))


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    x = fdp.ConsumeUnicodeNoSurrogates(len(data))
    for keep in (False, True):
        c = clean_text(x, keep_dashes=keep)
        assert clean_text(c, keep_dashes=keep) == c, (x, c)
    k = title_key(x)
    assert title_key(k) == k, (x, k)
    series, _ = strip_episode(clean_text(x))
    assert strip_episode(series)[0] == series, (x, series)
    split_series(k)
    cat = normalize_category(x)
    assert cat is None or normalize_category(cat) == cat, (x, cat)
    assert fold(fold(x)) == fold(x), x
    unknown = 1 + TOKENIZER.sp.unk_id()
    assert all(0 < i < TOKENIZER.vocab_size and i != unknown for i in TOKENIZER.encode(x)), x


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
