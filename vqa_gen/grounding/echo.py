"""Few-shot echo: an answer copied from the prompt's own worked example, not from the caption.

A small model shown one worked example ("Pityriasis rosea: oval salmon-pink scaly patches ..."
/ "What colour are the patches?" -> "Salmon-pink.") often repeats the example's answer for
another image. When the repeated answer is a synonym of what the caption says ("salmon" and
"pink" are one colour group), the support score cannot tell it from a paraphrase; the copy
itself can: the answer is word for word one of the example's answers, and it writes a word
that the example's caption writes and this record's caption does not. A generic answer the
example also gives ("A dermoscopic image.") takes nothing from the example's caption, so it is
left to the other checks. A looser copy gives itself away the same way: a word the caption
does not support that the example's caption writes, alone or as part of a hyphenated word
("As a string of black pigment on the nail" after the example's "string-of-pearls pattern").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import NamedTuple

_EDGE = " \t\n.,;:!?\"'()[]"


def answer_key(answer: str) -> str:
    """An answer as compared with the example answers: case, spacing and the punctuation at
    its ends aside ("Salmon-pink." = "salmon-pink")."""
    return " ".join(answer.casefold().split()).strip(_EDGE)


class Example(NamedTuple):
    """One worked example of a prompt: its caption and the answers of its reply."""

    caption: str
    answers: tuple[str, ...]


def _with_parts(words: list[str]) -> set[str]:
    """The words and the parts of the hyphenated ones ("string-of-pearls": string, pearls)."""
    out = set(words)
    for w in words:
        if "-" in w:
            out.update(p for p in w.split("-") if p)
    return out


def example_words(examples: Sequence[Example], words: Callable[[str], list[str]]
                  ) -> list[set[str]]:
    """The words of each example's caption, with the parts of its hyphenated words: read
    once per record, not once per answer."""
    return [_with_parts(words(ex.caption)) for ex in examples]


def echoed_words(answer: str, examples: Sequence[Example], in_examples: Sequence[AbstractSet[str]],
                 caption_words: AbstractSet[str], words: Callable[[str], list[str]],
                 stop: AbstractSet[str], unsupported: Callable[[str], bool] | None = None
                 ) -> list[str]:
    """The words `answer` takes from an example's caption (empty: no echo): all of them when it
    repeats one of that example's answers; else, given `unsupported` (is a word unsupported by
    the record's caption?), the unsupported ones. `in_examples` are the examples'
    `example_words`; `caption_words` the words the record's caption and metadata write;
    `words` splits a text into the same kind of (folded) words; stop words and numbers (the
    number check's) never count."""
    key = answer_key(answer)
    if not key:
        return []
    mine = [w for w in dict.fromkeys(words(answer))
            if w not in caption_words and w not in stop and w[:1].isalpha()]
    if not mine:  # (every word of the answer is the caption's own)
        return []
    for ex, in_example in zip(examples, in_examples, strict=True):
        taken = [w for w in mine if w in in_example]
        if not taken:
            continue
        if any(answer_key(a) == key for a in ex.answers):
            return taken
        if unsupported is not None:
            taken = [w for w in taken if unsupported(w)]
            if taken:
                return taken
    return []
