"""Realistic captions and model replies for benchmarks (issue 9).

Why: the 48 sample captions and `qa_from_caption`'s verbatim-span answers are too uniform to
measure what a user sees. Real caption sets (radiology, dermatology, pathology figure legends)
run from 50 to 600 characters (median ~150, p90 ~370), and real model replies carry answers of
3-40 words that mix caption phrases, paraphrases and invented content, which is exactly what
makes the grounding filter work hard.

Both generators are deterministic: `captions(n, seed)` yields the same texts for the same
arguments, and `realistic_reply(caption, n)` the same reply for the same caption, so a run can
be repeated and a rerun served from the cache. `realistic_responder` plugs the replies into
`FakeOpenAIServer` (`python -m vqa_gen.testing --realistic`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import orjson

MODALITIES = ("clinical", "dermoscopic", "pathology", "other")

_DIAGNOSES = {
    "clinical": ["psoriasis vulgaris", "atopic dermatitis", "basal cell carcinoma",
                 "squamous cell carcinoma", "lichen planus", "pityriasis rosea", "tinea corporis",
                 "herpes zoster", "bullous pemphigoid", "erythema multiforme", "vitiligo",
                 "acne vulgaris", "rosacea", "cellulitis", "pyoderma gangrenosum"],
    "dermoscopic": ["melanoma", "melanocytic naevus", "seborrhoeic keratosis",
                    "basal cell carcinoma", "dermatofibroma", "haemangioma",
                    "actinic keratosis", "Spitz naevus", "lentigo maligna"],
    "pathology": ["invasive ductal carcinoma", "melanoma in situ", "tubular adenoma",
                  "granulomatous inflammation", "squamous cell carcinoma",
                  "diffuse large B-cell lymphoma", "adenocarcinoma", "lichenoid dermatitis",
                  "sarcoidosis", "clear cell renal cell carcinoma"],
    "other": ["pneumothorax", "lobar pneumonia", "hepatocellular carcinoma", "renal cyst",
              "subdural haematoma", "pleural effusion", "osteosarcoma", "appendicitis",
              "pulmonary embolism", "meningioma"],
}
_OPENERS = {
    "clinical": ["Clinical photograph of {dx}.", "{Dx}.", "{Dx} on the {site} of a {age}-year-old "
                 "{sex}.", "Clinical image: {dx} in a {age}-year-old {sex}."],
    "dermoscopic": ["Dermoscopy of {dx}.", "Dermoscopic image of a {dx} on the {site}.",
                    "{Dx}: dermoscopy."],
    "pathology": ["{Dx}. Haematoxylin and eosin stain, x{mag}.",
                  "Histopathology of {dx} (H&E, original magnification x{mag}).",
                  "Photomicrograph showing {dx}."],
    "other": ["Axial contrast-enhanced CT showing {dx}.", "Chest radiograph: {dx}.",
              "Coronal T2-weighted MRI demonstrates {dx}.", "Ultrasound image of {dx}."],
}
_FINDINGS = {
    "clinical": ["Well-demarcated erythematous plaques with silvery-white scale",
                 "Multiple grouped vesicles on an erythematous base",
                 "A pearly papule with rolled borders and telangiectasia",
                 "Symmetric violaceous flat-topped papules", "Scattered annular lesions with "
                 "central clearing", "An ulcerated nodule with a raised edge",
                 "Tense bullae on normal-appearing skin", "Depigmented macules and patches"],
    "dermoscopic": ["an atypical pigment network", "a blue-white veil", "irregular dots and "
                    "globules", "milia-like cysts and comedo-like openings",
                    "arborizing vessels", "a central white scar-like patch",
                    "a regular reticular pattern", "red lacunae", "radial streaming"],
    "pathology": ["nests of atypical melanocytes at the dermoepidermal junction",
                  "infiltrating glands in a desmoplastic stroma", "non-caseating granulomas",
                  "sheets of large atypical lymphoid cells", "keratin pearls",
                  "a band-like lymphocytic infiltrate", "cells with clear cytoplasm",
                  "frequent mitotic figures"],
    "other": ["a {size} cm hypodense lesion", "air in the pleural space",
              "consolidation with air bronchograms", "a well-circumscribed cystic mass",
              "a crescent-shaped extra-axial collection", "a filling defect in the pulmonary "
              "artery", "periosteal reaction", "a fluid level"],
}
_SITES = ["elbows", "knees", "scalp", "trunk", "back", "left forearm", "right cheek", "shins",
          "upper lip", "dorsum of the hand", "abdomen", "left thigh", "right lower lobe",
          "liver", "left kidney"]
_EXTRAS = ["The lesion had been present for {months} months.",
           "No similar lesions were seen elsewhere.", "Note the sharp demarcation from the "
           "surrounding skin.", "The surrounding tissue appears normal.",
           "Compare with the previous image.", "There is no evidence of invasion.",
           "Arrows indicate the area of interest.", "Findings were confirmed on biopsy.",
           "The margins are irregular.", "Inset: higher magnification of the boxed area."]
_TYPES = ("diagnosis", "morphology", "color", "location", "distribution", "modality")
_QUESTIONS = {
    "diagnosis": ["What is the most likely diagnosis?", "What condition is shown?",
                  "Which disease does this image show?"],
    "morphology": ["What findings are visible?", "Describe the morphology of the lesion.",
                   "What features does the lesion show?", "What structures can be seen?"],
    "color": ["What colour are the lesions?", "What is the colour of the affected area?"],
    "location": ["Where is the lesion located?", "Which body site is affected?"],
    "distribution": ["How are the lesions distributed?", "What is the distribution pattern?"],
    "modality": ["What type of image is this?", "What imaging technique was used?"],
}
_PARAPHRASE = {"shows": "demonstrates", "showing": "displaying", "with": "featuring",
               "multiple": "several", "lesion": "abnormality", "atypical": "abnormal",
               "large": "big", "scale": "scaling", "plaques": "raised patches",
               "erythematous": "red", "demonstrates": "shows", "cells": "tumour cells"}
_INVENTED = ["which is typically treated with topical corticosteroids",
             "most commonly seen in middle-aged adults", "measuring approximately 2.5 cm",
             "in a 63-year-old woman", "with associated lymphadenopathy",
             "consistent with a benign process", "caused by a viral infection",
             "on the right side", "with yellowish crusting", "suggesting metastatic disease",
             "and the prognosis is excellent", "with bilateral involvement",
             "showing 12 mitoses per high-power field", "affecting the mucous membranes"]


def _rng(text: str, salt: str = "") -> random.Random:
    digest = hashlib.blake2b(f"{salt}\x1f{text}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _target_length(rng: random.Random) -> int:
    """Caption length in characters: log-normal, median ~150, p90 ~370, clipped to 50-600."""
    return int(min(600, max(50, rng.lognormvariate(5.0, 0.7))))


def caption(rng: random.Random, modality: str) -> str:
    """One caption of `modality`, grown sentence by sentence to a drawn target length."""
    dx = rng.choice(_DIAGNOSES[modality])
    fill = {"dx": dx, "Dx": dx[0].upper() + dx[1:], "site": rng.choice(_SITES),
            "age": rng.randint(3, 89), "sex": rng.choice(("man", "woman", "boy", "girl")),
            "mag": rng.choice((40, 100, 200, 400)), "size": round(rng.uniform(0.4, 9.0), 1),
            "months": rng.randint(1, 36)}
    target = _target_length(rng)
    parts = [rng.choice(_OPENERS[modality]).format(**fill)]
    findings = rng.sample(_FINDINGS[modality], k=len(_FINDINGS[modality]))
    while sum(len(p) + 1 for p in parts) < target and (findings or len(parts) < 8):
        if findings and rng.random() < 0.7:
            f = findings.pop().format(**fill)
            site = f" on the {fill['site']}" if rng.random() < 0.4 else ""
            parts.append((f[0].upper() + f[1:] if modality != "dermoscopic"
                          else f"There is {f}") + site + ".")
        else:
            parts.append(rng.choice(_EXTRAS).format(**fill))
    text = " ".join(parts)
    if len(text) > 600:
        text = text[:600].rsplit(" ", 1)[0].rstrip(",;") + "."
    return text


def captions(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """`n` input records (`id`, `image`, `modality`, `caption`) over all modalities."""
    rng = random.Random(seed)
    for i in range(n):
        modality = MODALITIES[rng.randrange(len(MODALITIES))]
        yield {"id": f"real-{i:07d}", "image": f"images/{modality}/{i}.jpg",
               "modality": modality, "caption": caption(rng, modality)}


def _words(text: str) -> list[str]:
    return text.replace(".", " .").split()


def _answer(rng: random.Random, cap_words: list[str]) -> str:
    """3-40 words: a caption span, a paraphrase of one, invented content, or a mix."""
    length = min(40, max(3, int(rng.triangular(3, 40, 8))))
    start = rng.randrange(max(1, len(cap_words) - 2))
    span = [w for w in cap_words[start:start + length] if w != "."] or cap_words[:3]
    kind = rng.random()
    if kind < 0.35:
        words = span
    elif kind < 0.65:
        words = [_PARAPHRASE.get(w.lower(), w) for w in span]
        if rng.random() < 0.5:
            words = ["The", "image", "shows", *words]
    elif kind < 0.85:
        words = [*span[: max(2, length // 2)], *rng.choice(_INVENTED).split()]
    else:
        dx = rng.choice([d for ds in _DIAGNOSES.values() for d in ds])
        words = [dx[0].upper() + dx[1:], *rng.choice(_INVENTED).split()]
    words = words[:40]
    while len(words) < 3:
        words.append(rng.choice(("lesion", "noted", "here")))
    text = " ".join(words).strip(" ,;")
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


@lru_cache(maxsize=8192)
def realistic_reply(caption_text: str, n: int = 5) -> str:
    """A `{"qa_pairs": [...]}` reply of `n` pairs for `caption_text`, deterministic."""
    rng = _rng(caption_text, "reply")
    cap_words = _words(caption_text)
    pairs = []
    for i in range(n):
        qtype = _TYPES[(i + rng.randrange(len(_TYPES))) % len(_TYPES)] if i else "diagnosis"
        pairs.append({"question": rng.choice(_QUESTIONS[qtype]),
                      "answer": _answer(rng, cap_words), "type": qtype})
    return orjson.dumps({"qa_pairs": pairs}).decode()


def realistic_responder(body: dict[str, Any]) -> str:
    """`FakeOpenAIServer` responder serving `realistic_reply` for the caption in the prompt,
    with as many pairs as the prompt asks for (default 5)."""
    from .server import _CAPTION_RE, _N_RE, _last_user_text, _requested_n, extract_caption

    user = _last_user_text(body)
    m = _CAPTION_RE.search(user)
    if m is None:  # a re-ask: the caption is in an earlier user message
        for msg in reversed(body.get("messages") or ()):
            if isinstance(msg, dict) and msg.get("role") == "user":
                text = str(msg.get("content") or "")
                if (m := _CAPTION_RE.search(text)) is not None:
                    user = text
                    break
    cap = extract_caption(m.group(0) if m else user)
    rest = user[: m.start()] + user[m.end():] if m else ""
    n = _requested_n(rest) if _N_RE.search(rest) else 5
    return realistic_reply(cap, n)
