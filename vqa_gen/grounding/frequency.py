"""English word frequencies on the Zipf scale, read from wordfreq's data without importing it.

Importing `wordfreq` costs about 0.14 s of every process's start-up (its `langcodes`
dependency compiles one very large regex), and the filter only asks for the frequency of
plain lower-case English words: a lookup in wordfreq's own `large_en` table. For a plain word
(ASCII letters, or such parts joined by hyphens, which wordfreq splits) `zipf` computes exactly
what `wordfreq.zipf_frequency(word, "en")` returns; any other token is asked of wordfreq itself,
imported on first need. The data ships in the wordfreq package: nothing is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
from pathlib import Path

_PLAIN = re.compile(r"[a-z]+(?:-[a-z]+)*")
_MINIMUM = 10**0.0 / 1e9  # wordfreq's zipf_to_freq(0.0): the frequency of an unknown word
_table: dict[str, int] | None = None


def _data_file() -> Path | None:
    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "large_en.msgpack.gz"
    return path if path.is_file() else None


def _load() -> dict[str, int]:
    """word -> its frequency in centibels below 1 (wordfreq's "cBpack": bucket i holds the
    words of frequency 10 ** (-i / 100)). Empty when the data file cannot be read."""
    path = _data_file()
    if path is None:
        return {}
    import msgpack  # type: ignore[import-untyped]  # wordfreq's own reader; cheap to import

    with gzip.open(path, "rb") as fh:
        data = msgpack.load(fh, raw=False)
    header = data[0] if data else None
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get(
            "version") != 1:
        return {}
    return {word: index for index, bucket in enumerate(data[1:]) for word in bucket}


def _plain_zipf(parts: list[str], table: dict[str, int]) -> float:
    """wordfreq's arithmetic, step for step (so the floats match): combine the parts'
    frequencies as 1/f = sum(1/f_i), round to 3 significant digits, convert to Zipf, round to
    hundredths."""
    one_over = 0.0
    for part in parts:
        index = table.get(part)
        if index is None:
            return round(math.log(_MINIMUM, 10) + 9, 2)
        one_over += 1.0 / 10 ** (-index / 100)
    unrounded = max(1.0 / one_over, _MINIMUM)
    freq = round(unrounded, math.floor(-math.log(unrounded, 10)) + 3)
    return round(math.log(freq, 10) + 9, 2)


def zipf(word: str) -> float:
    """Zipf frequency of an English word (log10 of its occurrences per billion words; 0 when
    unknown), as `wordfreq.zipf_frequency(word, "en")`."""
    global _table
    if _table is None:
        _table = _load()
    if _table and _PLAIN.fullmatch(word):
        return _plain_zipf(word.split("-"), _table)
    try:  # rare tokens only: digits, accents, apostrophes
        from wordfreq import zipf_frequency
    except ImportError:  # pragma: no cover - a declared dependency; fall back to word length
        return max(0.0, 8.0 - len(word))
    return zipf_frequency(word, "en")
