"""Fast paths of the checks and the filter pinned to the plain algorithm: the literal cue gates
never hide a match, a caption's topic mention is the evidence regex's, reasons and verdicts
built by the slots' setters are the dataclasses' own, duplicates found with the ratio's cutoff
are the plain ratio's."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqa_gen.grounding import GroundingFilter
from vqa_gen.grounding import lexicon as lx
from vqa_gen.grounding.checks.answerability import _Mentions
from vqa_gen.grounding.checks.base import ANSWER_CUES, QUESTION_CUES, CueGate
from vqa_gen.grounding.patterns import literal_heads
from vqa_gen.grounding.text import Normaliser
from vqa_gen.grounding.verdict import Reason, Verdict, new_reason, new_verdict

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"
TOPIC_QUESTIONS = [q for _, q, _ in lx.UNANSWERABLE_TOPICS]
CUE_LISTS = {"question": (QUESTION_CUES, (*lx.LEAKAGE_CUES, *TOPIC_QUESTIONS)),
             "answer": (ANSWER_CUES, (*lx.LEAKAGE_CUES, *lx.REFUSAL_CUES,
                                      *lx.GENERAL_KNOWLEDGE_CUES))}


def _texts() -> list[str]:
    norm = Normaliser()
    out = []
    for name in ("grounding_eval.jsonl", "general_eval.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            out += [norm.view(row["question"]).text, norm.view(row["answer"]).text]
    return out


@pytest.mark.parametrize(("pattern", "heads"), [
    (r"\bcaptions?\b", [("caption", "b"), ("captions", "b")]),
    (r"^(?:the )?figure\b", [("figure", "^"), ("the figure", "^")]),
    (r"\bfig(?:ure)?\.?\s*\d+", [("fig", "b"), ("fig.", "b"), ("figure", "b"),
                                 ("figure.", "b")]),
    (r"treat|due to", [("due to", ""), ("treat", "")]),
    (r"\b(?:is|are) caus\w*", [("are caus", "b"), ("is caus", "b")]),
    (r"ab+c", [("ab", "")]),
    (r"\b\.x", [(".x", "")]),  # `\b` before a non-word character: no word start
])
def test_literal_heads_read_how_a_match_starts(pattern, heads):
    assert literal_heads(pattern) == heads


@pytest.mark.parametrize("pattern", [r"\w+", r"(?=a)b", r"\b(?:x|\d)", "a?"])
def test_literal_heads_refuse_a_match_that_can_start_anywhere(pattern):
    with pytest.raises(ValueError):
        literal_heads(pattern)


def _every_cue_text(patterns) -> list[str]:
    """Each head of each cue, alone, inside words and after punctuation."""
    out = []
    for p in patterns:
        for h, _ in literal_heads(p):
            out += [h, f"x{h}", f"({h} y", f"a {h}.", f"-{h}"]
    return out


@pytest.mark.parametrize("side", sorted(CUE_LISTS))
def test_cue_gates_never_hide_a_match(side):
    gate, patterns = CUE_LISTS[side]
    compiled = [re.compile(p) for p in patterns]
    data = _texts()
    for t in data + _every_cue_text(patterns):
        for s in (t, t.strip()):
            if any(c.search(s) for c in compiled):
                assert gate.search(t), (side, t)
    assert sum(not gate.search(t) for t in data) > len(data) * 0.8  # most are ruled out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aceinorst .,'-()fgu", max_size=40))
def test_cue_gates_on_random_text(text):
    for gate, patterns in CUE_LISTS.values():
        if any(re.search(p, text) for p in patterns):
            assert gate.search(text), text


def test_gate_is_memoised_on_the_facts():
    f = GroundingFilter()
    facts = f.analyser.text_facts("As mentioned in the caption, a plaque.")
    assert ANSWER_CUES.passes(facts) is True
    assert facts.memo[ANSWER_CUES.slot] is True
    gate = CueGate([r"\bzzz\b"], "zzz_test")
    assert gate.passes(facts) is False and facts.memo["zzz_test"] is False


@pytest.mark.parametrize("topic", lx.UNANSWERABLE_TOPICS, ids=lambda t: t[0])
def test_topic_mentions_match_the_evidence_regex(topic):
    _, _, evidence = topic
    plain, fast = re.compile(evidence), _Mentions(evidence)
    texts = _texts() + [f"x {w} y" for w in fast.words] + [
        "seen in 1999", "for the past 3 weeks", "in june", "2 per 1000 people"]
    for t in texts:
        assert fast(t) == (plain.search(t) is not None), t


def test_reasons_and_verdicts_built_by_setters_are_the_dataclasses():
    r = new_reason("refusal", "leakage", "answer refuses", 0.9, "i cannot")
    plain = Reason(code="refusal", check="leakage", detail="answer refuses", penalty=0.9,
                   evidence="i cannot")
    assert r == plain and repr(r) == repr(plain) and hash(r) == hash(plain)
    assert new_reason("a", "b", "c", 0.1) == Reason("a", "b", "c", 0.1)
    v = new_verdict(0.1, False, (r,))
    assert v == Verdict(0.1, False, (plain,)) and repr(v) == repr(Verdict(0.1, False, (plain,)))
    assert v.to_dict() == Verdict(0.1, False, (plain,)).to_dict()
    for obj, field in ((r, "penalty"), (v, "score")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0.5)


def test_a_pair_with_no_reason_gets_the_plain_verdict():
    f = GroundingFilter()
    v = f.check("A red plaque on the elbow.", "What colour is the plaque?", "Red.")
    assert v == Verdict(score=1.0, passed=True, reasons=())
    assert f.combine([]) == Verdict(score=1.0, passed=True, reasons=())


def test_duplicates_with_the_cutoff_match_the_plain_ratio():
    from rapidfuzz import fuzz

    f = GroundingFilter()
    rows = [json.loads(line) for line in
            (DATA / "general_eval.jsonl").read_text(encoding="utf-8").splitlines()]
    questions = [r["question"] for r in rows[:40]] + ["What is the size?", "What is the size?",
                                                      "What size is it?"]
    verdicts = [Verdict(1.0 - i / 100, True, ()) for i in range(len(questions))]
    got = f.mark_duplicates(questions, verdicts)
    # the plain algorithm: every pair's full ratio
    keys = [f.question_key(q) for q in questions]
    out, dropped = list(verdicts), set()
    for i in range(len(keys)):
        if i in dropped or not keys[i]:
            continue
        for j in range(i + 1, len(keys)):
            if j in dropped or not keys[j]:
                continue
            sim = fuzz.token_set_ratio(keys[i], keys[j])
            if sim < f._dup_threshold:
                continue
            worse, better = (i, j) if out[i].score < out[j].score else (j, i)
            dropped.add(worse)
            r = Reason("duplicate_question", "duplicates",
                       f"near-duplicate of question {better + 1} ({sim:.0f}%)",
                       f._dup_penalty, str(questions[better])[:120])
            out[worse] = f.combine((*out[worse].reasons, r))
            if worse == i:
                break
    assert got == out
    assert any(v.reasons for v in got)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aBß .?!,-'\t\u00e9\u0130x1", max_size=30))
def test_form_first_word_is_the_plain_texts(raw):
    from vqa_gen.grounding.checks.form import _FIRST, _PUNCT

    plain = _PUNCT.sub(" ", raw.strip().casefold()).strip()
    m = _FIRST.search(raw.casefold())
    assert (m.group(0) if m else "") == plain.split(" ", 1)[0]
