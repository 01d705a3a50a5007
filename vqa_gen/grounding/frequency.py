"""English word frequencies on the Zipf scale, read from wordfreq's data without importing it.

Importing `wordfreq` costs about 0.14 s of every process's start-up (its `langcodes`
dependency compiles one very large regex), and the filter only asks for the frequency of
lower-case English tokens: a lookup in wordfreq's own `large_en` table. For a plain token
(ASCII letters and digits, or such parts joined by hyphens, which wordfreq splits) `zipf`
computes exactly what `wordfreq.zipf_frequency(token, "en")` returns, digit sequences included,
and so for a contraction the table holds whole ("don't"). Any other token (a decimal point, an
apostrophe wordfreq splits, a non-ASCII letter) is asked of wordfreq itself, imported on first
need. The data ships in the wordfreq package: nothing is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
from pathlib import Path

_PLAIN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CONTRACTION = re.compile(r"[a-z]+'[a-z]+")  # "i'm", "don't": one token when in the table
_MULTI_DIGIT = re.compile(r"\d[\d.,]+")
_PURE_DIGITS = re.compile(r"\d+")
# wordfreq's model of digit sequences (wordfreq/numbers.py): Benford's law for leading digits,
# a fitted curve for four-digit years
_DIGIT_FREQS = (0.009, 0.300, 0.175, 0.124, 0.096, 0.078, 0.066, 0.057, 0.050, 0.045)
_YEAR_LOG_PEAK, _NOT_YEAR_PROB, _REFERENCE_YEAR, _PLATEAU_WIDTH = -1.9185, 0.1, 2019, 20
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


def _benford(digits: str) -> float:
    return _DIGIT_FREQS[int(digits[0])] / 10 ** (len(digits) - 1)


def _year(digits: str) -> float:
    year = int(digits)
    if year <= _REFERENCE_YEAR:
        log_freq = _YEAR_LOG_PEAK - 0.0083 * (_REFERENCE_YEAR - year)
    elif year <= _REFERENCE_YEAR + _PLATEAU_WIDTH:
        log_freq = _YEAR_LOG_PEAK
    else:
        log_freq = _YEAR_LOG_PEAK - 0.2 * (year - (_REFERENCE_YEAR + _PLATEAU_WIDTH))
    return 10.0**log_freq + _NOT_YEAR_PROB * _benford(digits)


def _digit_freq(token: str) -> float:
    freq = 1.0
    for match in _MULTI_DIGIT.findall(token):
        for digits in _PURE_DIGITS.findall(match):
            freq *= _year(digits) if len(digits) == 4 else _benford(digits)
    return freq


def _plain_zipf(parts: list[str], table: dict[str, int]) -> float:
    """wordfreq's arithmetic, step for step (so the floats match): combine the parts'
    frequencies as 1/f = sum(1/f_i), round to 3 significant digits, convert to Zipf, round to
    hundredths."""
    one_over = 0.0
    for part in parts:
        smashed = _MULTI_DIGIT.sub(lambda m: re.sub(r"\d", "0", m.group(0)), part)
        index = table.get(smashed)
        if index is None:
            return round(math.log(_MINIMUM, 10) + 9, 2)
        freq = 10 ** (-index / 100)
        if smashed != part:
            freq *= _digit_freq(part)
        one_over += 1.0 / freq
    unrounded = max(1.0 / one_over, _MINIMUM)
    freq = round(unrounded, math.floor(-math.log(unrounded, 10)) + 3)
    return round(math.log(freq, 10) + 9, 2)


def zipf(word: str) -> float:
    """Zipf frequency of an English word (log10 of its occurrences per billion words; 0 when
    unknown), as `wordfreq.zipf_frequency(word, "en")`."""
    global _table
    if _table is None:
        _table = _load()
    if _table and (_PLAIN.fullmatch(word) or (_CONTRACTION.fullmatch(word) and word in _table)):
        return _plain_zipf(word.split("-"), _table)
    try:  # rare tokens only: apostrophes, decimal points, non-ASCII letters
        from wordfreq import zipf_frequency
    except ImportError:  # pragma: no cover - a declared dependency; fall back to word length
        return max(0.0, 8.0 - len(word))
    return zipf_frequency(word, "en")
