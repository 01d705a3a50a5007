"""Relevance: the answer must be the kind of thing its question asks for.

Small models answer "What colour is it?" with "Black" fine, but also "Where is it?" with "Black",
"What type of image is this?" with the diagnosis, and "What is the condition?" with the stain.
Each word of such an answer may be in the caption, so the content checks pass it; this check
looks at the question's kind instead. It only judges open questions of the kinds it can
recognise reliably (colour, location or distribution, image type, age/sex, how it looks), an
answer that is only the kind of image to a question about something in it, only the disease's
name to a question about its looks or place, and answers that carry nothing for an open
question (a bare yes/no, the question's words restated, a generated question that names its
own answer); anything else passes untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from .. import lexicon as lx
from ..analysis import Analyser, CaptionFacts, QAFacts, after_lead_in
from ..patterns import trie_pattern
from ..support import informativeness
from ..verdict import Reason
from .base import Check
from .numbers import counted

_COLOUR_Q = re.compile(r"\b(?:colou?rs?|hues?|shades?)\b")
_LOCATION_Q = re.compile(
    r"^\W*(?:where\b|(?:what|which)\s+(?:is\s+|are\s+)?(?:the\s+)?"
    r"(?:(?:most\s+)?likely\s+|main\s+|predominant\s+)?(?:clinical\s+|anatomic(?:al)?\s+)?"
    r"(?:body\s+)?"
    r"(?:location|site|region|area|(?:(?:mode|pattern|type) of )?distribution|part of the body|"
    r"anatomic(?:al)? (?:site|location))\b|how (?:is|are) (?:the |this |these |it )?(?:\w+ )?"
    r"distributed\b)")
_MODALITY_Q = re.compile(
    r"\b(?:(?:type|kind|sort)\s+of\s+(?:image|imaging|picture|photo\w*|view|study|scan|"
    r"examination|exam)|modality|imaging (?:technique|method)|how was (?:this|the) (?:image|"
    r"picture|photo\w*) (?:taken|obtained|acquired|made))\b")
_WORD = re.compile(r"[a-z][a-z-]*")
_WH = frozenset({"what", "which", "where", "who", "whom", "whose", "when", "why", "how"})
_DEMOGRAPHIC_Q = re.compile(r"\b(?:demographics?|gender|sex|how old|age of|patient's age|"
                            r"who is (?:the|this) (?:(?:most )?(?:likely|probable) )?"
                            r"(?:patient|person|individual|subject))\b")
# The words of an answer that names only the kind of image (its tokens after folding:
# "dermoscopic" reads "dermoscopy", "H&E" "hematoxylin eosin")
_MODALITY_WORDS = frozenset(lx.words(
    "clinical dermoscopy dermoscopic dermatoscopy dermatoscopic histopathology histopathological "
    "histology histological histologic histopathologic microscopy microscopic microscopical "
    "micrograph photomicrograph radiograph "
    "radiographic hematoxylin haematoxylin eosin pas giemsa stain stained staining "
    "immunohistochemistry immunohistochemical image images photo photograph picture view slide "
    "section close-up macroscopic gross x-ray ct mri ultrasound "
    "lesion lesions skin "  # (generic: "a clinical photograph of the lesion" names nothing)
    "appears appear seems seem"))  # ("The image appears to be a dermoscopic image.")
# (one of them must name the kind: "I cannot see the image" is a refusal, not an image type)
_MODALITY_NAMES = _MODALITY_WORDS - frozenset(lx.words(
    "image images photo photograph picture view slide section lesion lesions skin "
    "appears appear seems seem"))
_MAGNIFICATION = re.compile(r"(?:x\d+|\d+x|×\d+|\d+×)")


def _modality_only(tokens: list[str], stop: frozenset[str]) -> bool:
    """Is the answer nothing but the kind of image, its stain and magnification ("Dermoscopic
    image.", "H&E, x100"), and words naming a kind of information ("Microscopical
    morphology")?"""
    if _MODALITY_NAMES.isdisjoint(tokens):  # (most answers: one set test)
        return False
    return all(t in _MODALITY_WORDS or t in stop or t in _CATEGORY_WORDS
               or _MAGNIFICATION.fullmatch(t) is not None for t in tokens if t[0].isalnum())


_AGE_DIMS = frozenset({"", "age"})  # the quantities that can state an age
# question words that ask about the image as a whole: the kind of image answers them
_IMAGE_WORDS = frozenset(lx.words(
    "image images picture pictures photo photograph photographs view views type kind sort "
    "modality shown show shows seen depicted depict depicts visible displayed illustrated "
    "stain stains staining stained magnification microscopy method technique imaging used "
    "taken obtained acquired made"))
_DIAGNOSIS_Q = re.compile(r"\b(?:diagnos[ie]s|condition|disease|disorder|classification)\b")
_MORPHOLOGY_Q = re.compile(r"\b(?:morpholog\w*|shapes?|appearance|configuration|looks? like|"
                           r"arrange\w*|how (?:does|do) (?:\w+ ){1,3}(?:look|affect|manifest|"
                           r"present|appear))\b")
_SHAPE_Q = re.compile(r"\bshapes?\b")
# questions that ask what the image shows ("what is it?", "which lesion is this?")
_IDENTITY_Q = re.compile(r"\b(?:what|which)(?: \w+)? (?:is|are) (?:it|this|these|that|shown|"
                         r"seen|depicted)\b")

_COLOUR_A = re.compile(
    r"\b(?:red\w*|pink\w*|brown\w*|white\w*|black\w*|purpl\w*|violac\w*|viol\w*|yellow\w*|"
    r"blu\w*|gr[ae]y\w*|green\w*|orange\w*|tan|salmon|erythem\w*|pigment\w*|hyperpigment\w*|"
    r"hypopigment\w*|depigment\w*|skin[- ]colou?red|flesh[- ]colou?red|colou?r\w*|dark\w*|"
    r"light\w*|pale\w*|blanch\w*|dusky|livid|haemorrhag\w*|hemorrhag\w*|translucent|pearly|"
    r"golden|silver\w*|amelanotic|melanotic|eosinophil\w*|basophil\w*|hyperchromat\w*|"
    r"pallor|cyanot\w*|jaundic\w*|icteric|opaque|clear|bright\w*)\b")
_LOCATION_A = re.compile(
    r"\b(?:on|in|at|over|along|within|around|beneath|under|below|above|near|across|"
    r"throughout|between|behind|inside|left|right|upper|lower|central|peripheral|proximal|"
    r"distal|dorsal|ventral|lateral|medial|anterior|posterior|superior|inferior|bilateral\w*|"
    r"unilateral|dermis|dermal|epiderm\w*|subcut\w*|junction\w*|mucos\w*|lobe|quadrant|"
    r"segment|side|surface|aspect|border|margin|fold|flexur\w*|extensor\w*|"
    r"acral|truncal|facial|scalp|trunk|limbs?|extremit\w*|generali[sz]ed|widespread|"
    r"locali[sz]ed|diffuse\w*|"
    # the layers and structures of a histology section (a place under the microscope)
    r"(?:sub|intra|supra|peri|inter|trans)(?:epiderm|derm|cut|basal|vascular|adnexal|"
    r"follicular|ungual|mucosal)\w*|basal|layers?|stratum|corne\w*|granular|spinous|"
    r"papillary|reticular|follicles?|glands?|ducts?|adnexa\w*|fat|pannicul\w*|"
    r"vessels?|perineural|lumen|stroma\w*|matrix|plate|bed)\b")
# How lesions are spread, which answers "What is the distribution?" with no place word
_DISTRIBUTION_A = re.compile(
    r"\b(?:dermatom\w*|symmetr\w*|asymmetr\w*|group\w*|cluster\w*|linear\w*|scatter\w*|"
    r"annular|arcuate|arciform|follicul\w*|zosteriform|herpetiform|reticula\w*|confluen\w*|"
    r"discrete|solitary|single|multiple|isolated|universal\w*|segment\w*|band-?like|patchy|"
    r"interstitial|nodular|sun-exposed|photo-?distribut\w*|photo-?exposed|intertrigin\w*|"
    r"seborrh\w*|koebner\w*|blaschk\w*|satellite|circumscribed|along|serpigin\w*|"
    r"lichenoid|pagetoid|nests?|sheets?|cords?|strands?|lobul\w*)\b")
_MODALITY_A = re.compile(
    r"(?:\b(?:photo\w*|clinical|dermoscop\w*|dermatoscop\w*|histo\w*|h&e|h & e|haematoxylin|"
    r"hematoxylin|eosin|microscop\w*|micrograph\w*|biops\w*|stain\w*|immuno\w*|x-?rays?|"
    r"radiograph\w*|ct|computed|tomograph\w*|mri|magnetic|ultraso\w*|sonograph\w*|fundus|"
    r"fundoscop\w*|ophthalmoscop\w*|endoscop\w*|colonoscop\w*|gastroscop\w*|oct|angiogra\w*|"
    r"mammogra\w*|pet|scans?|slides?|smears?|cytolog\w*|sections?|images?|imaging|"
    r"macroscop\w*|gross|pathology|patholog\w*|close-up|close up|view)\b)")

# What a question asks for, tested in this order (the first that matches decides).
_QUESTION_KINDS = (("modality", _MODALITY_Q), ("colour", _COLOUR_Q),
                   ("demographic", _DEMOGRAPHIC_Q), ("location", _LOCATION_Q),
                   ("diagnosis", _DIAGNOSIS_Q), ("morphology", _MORPHOLOGY_Q))
# ("What condition has this appearance?" asks for a diagnosis: a disease name answers it)
# Every match of a kind but location contains one of these: a question with none of them can
# only ask for a location (one search instead of five).
_KIND_CUES = re.compile(trie_pattern([
    "type", "kind", "sort", "modality", "imaging", "how was",  # _MODALITY_Q
    "colo", "hue", "shade",  # _COLOUR_Q
    "demographic", "gender", "sex", "old", "age", "who is",  # _DEMOGRAPHIC_Q
    "morpholog", "shape", "appearance", "configuration", "look like", "looks like", "arrange",
    "how do",  # _MORPHOLOGY_Q ("how does ... look/affect/present?")
    "diagnos", "condition", "disease", "disorder", "classification"]))  # _DIAGNOSIS_Q


# Words that name a kind of information, not any of it: an answer of nothing else ("Location
# distribution", "Morphology") answers no open question.
_CATEGORY_WORDS = frozenset(lx.words(
    "location locations site sites distribution pattern diagnosis diagnoses morphology "
    "modality type kind sort colour color demographic demographics age sex gender structure "
    "condition disease morphological"))


# Plural heads of disease names the caption may write ("seborrhoeic keratoses")
_NAME_ENDS: tuple[str, ...] = (*lx.DISEASE_ENDS, "toses", "iases")
# Words of a run that only places the lesion or describes the patient ("on the left cheek of
# a 76-year-old woman"): no word of how it looks.
_PERSON_WORDS = frozenset((*lx.SEX_WORDS, *lx.AGE_GROUPS, *lx.words(
    "year-old years-old year years old aged patient patients person individual subject "
    "month-old months-old")))
_PLACE_WORDS = frozenset(lx.words(
    "left right bilateral unilateral both upper lower side sides aspect area region part "
    # (the layers of a histology section: "Dermo-epidermal junction." says where, not how)
    "dermis dermal epidermis epidermal dermo-epidermal dermoepidermal junction junctional "
    "subcutis subcutaneous papillary reticular mid deep superficial layer layers"))


# Words that say how a disease behaves, not how it looks: before its name they add nothing
# an image shows ("Malignant melanoma" answering "How does the melanoma affect the skin?")
_BEHAVIOUR = frozenset(lx.words("malignant benign"))
_PLURAL_HEADS = (("oses", "osis"), ("iases", "iasis"), ("naevi", "naevus"), ("nevi", "nevus"),
                 ("omata", "oma"), ("omas", "oma"))


def _singular(token: str) -> str:
    """A disease name's plural head as its singular ("keratoses" -> "keratosis"), whose key
    the caption's singular has; any other word as it is."""
    for plural, one in _PLURAL_HEADS:
        if token.endswith(plural):
            return token[: -len(plural)] + one
    return token


# Words that name a finding, not a disease, with their plurals ("papules", "bullae", "septa"):
# a caption that opens with one opens with what it shows ("Violaceous papules on ...")
_FINDINGS = frozenset(w2 for w in (*lx.FINDING_TERMS, *lx.words(
    "lesion rash eruption mass growth tumour tumor swelling area")) for w2 in (
    w, w + "s", w + "es", w[:-1] + "ae" if w.endswith("a") else w,
    w[:-2] + "a" if w.endswith("um") else w))


def _person(run: list[str]) -> bool:
    """A run of words that only describe the patient ("76 year-old woman")."""
    return all(t in _PERSON_WORDS or t.isdigit() for t in run)


def _title(cap: CaptionFacts, stop: frozenset[str], key: Callable[[str], str]
           ) -> tuple[str, bool]:
    """The caption's first run of content words that is not only the kind of image: the name
    a figure legend opens with ("Lentigo maligna on ...", "Dermoscopy of a benign compound
    naevus: ..."), as its keys " k1 k2 " (plural heads made singular), and whether it surely
    is a disease name: it holds a disease name's head word, ends its sentence or clause
    ("Blue naevus. Dermoscopy shows ...", "Tinea corporis: an annular plaque ...") or names no
    finding ("Lentigo maligna on the left cheek"), where "Violaceous papules on the wrist:
    lichen planus" opens with one (and "A 45-year-old man with ..." with the patient).
    Memoised per caption."""
    hit = cap.facts.memo.get("title")
    if hit is None:
        run: list[int] = []
        tokens = cap.facts.view.tokens
        end = len(tokens)
        for i, t in enumerate([*tokens, "."]):
            if t[0].isalnum() and t not in stop:
                run.append(i)
            elif run and not all(tokens[j] in _MODALITY_WORDS for j in run):
                end = i
                break
            else:
                run = []
        words = [tokens[j] for j in run]
        named = bool(run) and not _person(words) and (
            any(t.endswith(_NAME_ENDS) for t in words)
            or end >= len(tokens) or tokens[end] in (".", ":", ";")
            or _FINDINGS.isdisjoint(words))
        hit = cap.facts.memo["title"] = (" ".join(
            ["", *[key(_singular(tokens[j])) for j in run], ""]) if run else "", named)
    return hit


def _disease_only(tokens: list[str], stop: frozenset[str], cap: CaptionFacts,
                  key: Callable[[str], str], site_keys: frozenset[str] | None = None,
                  titled: bool = False) -> bool:
    """Is the answer nothing but the caption's disease name, with at most the stain,
    magnification or kind of image ("Dermatofibroma.", "Basal cell carcinoma (H&E, x100)"),
    and the patient ("in a 9-year-old child")? Each run of content words between stop words
    and punctuation must hold a disease name's head word (or, when `titled`, be the name the
    caption opens with: "Lentigo maligna") and stand in the caption as written: a run
    without one ("with silvery scale") says something else, and one the caption does not
    write ("a pearly basal cell carcinoma nodule") describes as well as names (words compared
    by `key`; "keratoses" is the caption's "keratosis"). With `site_keys`, runs that only
    place the lesion ("on the left cheek") pass too: the answer still says nothing of its
    looks."""
    runs: list[list[str]] = []
    run: list[str] = []
    for t in [*tokens, "."]:
        if not t[0].isalnum() or t in stop:
            if run:
                runs.append(run)
                run = []
        elif run or not (t in _MODALITY_WORDS or _MAGNIFICATION.fullmatch(t)):
            run.append(t)  # (a run of modality words alone is protocol, not a claim)
    if not runs:
        return False
    if not titled and site_keys is None and not all(
            any(t.endswith(_NAME_ENDS) for t in r) or _person(r) for r in runs):
        return False  # (most answers: a run that names no disease, before any caption work)
    text = cap.facts.memo.get("joined_keys")
    if text is None:
        text = cap.facts.memo["joined_keys"] = " ".join(
            ["", *[key(_singular(t)) for t in cap.facts.view.tokens], ""])
    title = None
    named = placed = False
    for r in runs:
        if _person(r) or (site_keys is not None and all(
                t in _PERSON_WORDS or t.isdigit() or t in _PLACE_WORDS or key(t) in site_keys
                for t in r)):
            placed = True
            continue  # the patient, or (with `site_keys`) the place
        headed = any(t.endswith(_NAME_ENDS) for t in r)
        if headed and not _BEHAVIOUR.isdisjoint(r):  # ("Malignant melanoma" for "invasive
            r = [t for t in r if t not in _BEHAVIOUR]  # melanoma": still only its name)
        phrase = f" {' '.join([key(_singular(t)) for t in r])} "
        if phrase not in text:
            return False
        if not headed:
            if not titled:
                return False
            if title is None:
                text_of, is_name = _title(cap, stop, key)
                title = text_of if is_name else ""  # (a finding opens it: no name)
            if phrase != title:
                return False
        named = True
    # (with `site_keys`, only where it is and who has it says nothing of its looks either:
    # "Dermoscopic lesions on the temple of a 68-year-old man")
    return named or (placed and site_keys is not None)


# Words that answer "How many ...?" without a number ("Multiple.", "None.", "Both.")
_QUANTITY_WORDS = frozenset(lx.words(
    "multiple several many few numerous single solitary isolated none no both pair couple "
    "some various countless dozens hundreds thousands lot lots innumerable"))


def _uncounted(qa: QAFacts) -> str | None:
    """A generated count question answered with no count at all ("How many types are there?"
    / "Dermatoscopy of actinic keratosis on the forehead"). An answer opening with "a" or
    "one" counts one ("A solitary nodule.")."""
    if not counted(qa.question) or qa.answer.numbers:
        return None
    words = qa.answer.words
    if not words or words[0] in ("a", "an", "one") or not _QUANTITY_WORDS.isdisjoint(words):
        return None
    return "a count question answered with no number"


def _contentless(qa: QAFacts) -> str | None:
    """A generated open question answered with function words only ("What is the
    morphology?" / "A"); "None." and "Both." count, a side or a place answers."""
    a = qa.answer
    if qa.answer_content or a.numbers or a.sites or a.laterality or not a.words:
        return None
    if not _QUANTITY_WORDS.isdisjoint(a.words):
        return None
    return "the answer holds no word of its own"


# A diagnosis question proper ("What is the diagnosis?", "What type of disease is it?"; not
# "How does this condition affect the body?")
_NAMING_Q = re.compile(r"\bdiagnos[ie]s\b|\b(?:what|which)\s+(?:\w+\s+){0,3}"
                       r"(?:disease|condition|disorder)\b")
# Words that answer one in general terms ("A fungal infection of the nail")
_DISEASE_WORDS = frozenset(lx.words(
    "disease diseases condition conditions disorder disorders infection infections "
    "infestation tumour tumours tumor tumors cancer cancers neoplasm neoplasms malignancy "
    "dermatosis dermatoses"))


def _unnamed(qa: QAFacts, cap: CaptionFacts, stop: frozenset[str],
             key: Callable[[str], str]) -> bool:
    """A diagnosis answer that names no disease: no disease name's head word, no word of
    the name the caption opens with, no general word for a disease ("What is the
    diagnosis?" / "Dermatoscopic image showing homogeneous steel-blue pigmentation ..." for
    a blue naevus). Only when the caption surely opens with the disease's name."""
    tokens = [t for t in qa.answer.view.tokens if t[0].isalpha()]
    if not tokens or any(t.endswith(_NAME_ENDS) for t in tokens) or not (
            _DISEASE_WORDS.isdisjoint(tokens)):
        return False
    title, is_name = _title(cap, stop, key)
    if not is_name:
        return False
    return {key(_singular(t)) for t in tokens}.isdisjoint(title.split())


# A "how" question that asks what a thing is called or is ("How is it classified?", "How do
# you describe the image?"): its name answers it
_NAMING_HOW = re.compile(r"\b(?:classif\w*|call\w*|nam\w*|known|term\w*|categori[sz]\w*|"
                         r"descri\w*|defin\w*|identif\w*)\b")


def _elliptical(words: list[str]) -> bool:
    """A question of a bare noun phrase ("Distribution?", "Most likely diagnosis?"): an open
    question, "What is the ...?" left out."""
    return 0 < len(words) <= 3 and words[0] not in _WH and words[0] not in lx.AUX_START


def _asks(question: str) -> str:
    """The first kind `question` (casefolded) asks for, "" for none."""
    if _KIND_CUES.search(question) is None:
        return "location" if _LOCATION_Q.search(question) else ""
    return next((name for name, pattern in _QUESTION_KINDS if pattern.search(question)), "")


class RelevanceCheck(Check):
    """`answer_mismatch`: an open colour or image-type question whose answer names no colour or
    no imaging modality; a location or distribution question answered with only colour words
    ("Where?" / "Black"), with no place and no content word ("Affects the skin"), or with no
    place but a stain or magnification ("Verruca, nodular stage (H&E, x200)"); a
    diagnosis question answered with only an image type ("H&E (histopathology)"), and so any
    question naming something in the image ("How are the vessels arranged?" / "Dermoscopic
    image.")."""

    name = "relevance"
    defaults: ClassVar[dict[str, Any]] = {"penalty": 0.0,  # blocks; the score stays support
                                          "specific_term": 3.5}  # (as the content check's)

    def __init__(self, analyser: Analyser, params: dict[str, Any] | None = None) -> None:
        super().__init__(analyser, params)
        self._site_keys = frozenset(analyser.site_by_key)  # (keys of body-site words)

    def _useless(self, qa: QAFacts, generated: bool = False) -> str | None:
        """Answers that carry nothing for an open question: a bare yes/no ("What is the
        diagnosis?" / "No"), or the question's own words restated ("What is the most likely
        location?" / "The most likely location of the lesions."). Where the model wrote the
        question (`generated`), a restatement may also name a body site and add the kind of
        image ("What is the diagnostic term for nail clipping?" / "nail clipping"; "What is
        the anatomy?" / "The anatomy of dermoscopic image."), unless the question asks for
        the kind of image."""
        qtok = qa.question.words
        atok = qa.answer.words
        if not qtok or not atok or not (
                qtok[0] in _WH or after_lead_in(qa.question) in _WH
                or (qa.question.view.raw.rstrip().endswith("?") and _elliptical(qtok))):
            return None  # ("Based on the image, what is ...?" and "Distribution?" are open)
        if len(atok) <= 2 and all(t in lx.YES_WORDS or t in lx.NO_WORDS for t in atok[:2]):
            return "a wh-question answered with yes/no"
        if not _CATEGORY_WORDS.isdisjoint(atok) and all(
                t in _CATEGORY_WORDS or t in self.an.stop for t in atok):  # (not "One.")
            return "the answer names only a kind of information"
        # Cheapest tests first: most answers share no content word with their question.
        if qa.answer.numbers or (not generated and (qa.answer.sites or qa.answer.laterality)):
            return None  # (a number is news: "54 plaques")
        if self.an.stop.issuperset(set(qtok).intersection(atok)):
            return None  # no word but stop words in common
        if "or" in qtok and "or" not in atok:
            return None  # a choice question answered by picking one of its options
        q_keys = {k for _, _, k in self.an.content(qa.question)}
        a_keys = {k for _, t, k in qa.answer_content
                  if not (generated and t in _MODALITY_WORDS)}
        # A restatement repeats the question's frame: at least half its content words. An
        # answer that names one entity of a long question ("What city are the X Hospital and
        # the Y Hospital in?" / "Washington") takes a few of them and is an answer.
        if (a_keys <= q_keys and 2 * len(a_keys) >= len(q_keys) and (a_keys or not generated)
                and not (generated and _MODALITY_Q.search(qa.question.view.text))):
            return "the answer restates the question"
        return None

    def _named_in_question(self, qa: QAFacts) -> str | None:
        """A generated question that names what it asks for ("The image is a dermoscopic image
        of a sebaceous hyperplasia, what is it?" / "Dermoscopy of a sebaceous hyperplasia on
        the nose"): every specific term of the answer is the question's own, so the pair
        teaches nothing. Only questions asking what the image shows: "Where is the sebaceous
        hyperplasia?" names its subject and asks for something else."""
        q = qa.question
        ident = q.memo.get("identity")
        if ident is None:  # per question text
            text = q.view.text
            ident = q.memo["identity"] = bool(
                _IDENTITY_Q.search(text) or _DIAGNOSIS_Q.search(text))
        if not ident:
            return None
        specific = float(self.p["specific_term"])
        a_terms = {k for _, t, k in qa.answer_content if informativeness(t) >= specific}
        if not a_terms:
            return None
        q_keys = {k for _, _, k in qa.question_content}
        if a_terms <= q_keys:
            return "the question names the answer"
        return None

    def _named_for_how(self, qa: QAFacts, cap: CaptionFacts) -> str | None:
        """A generated "how" question answered with only the caption's disease name, with or
        without the question's own words or a word naming a kind of information ("How is it
        diagnosed?" / "Basal cell carcinoma diagnosis"): the name tells no how. Not "How is
        it classified?" nor "How do you describe the image?", which a name answers."""
        q = qa.question
        how = q.memo.get("how")
        if how is None:  # per question text
            how = q.memo["how"] = bool(q.words) and (
                q.words[0] == "how" or after_lead_in(q) == "how") and (
                _NAMING_HOW.search(q.view.text) is None)
        if not how:
            return None
        asked = {k for _, _, k in qa.question_content}
        view = qa.answer.view
        tokens = [("," if k in asked or t in _CATEGORY_WORDS else t)
                  for t, k in zip(view.tokens, view.keys, strict=True)]
        if _disease_only(tokens, self.an.stop, cap, self.an.norm.key, titled=True):
            return "a how-question answered with only the disease's name"
        return None

    def run(self, cap: CaptionFacts, qa: QAFacts, qa_type: str | None) -> list[Reason]:
        if qa.yes_no:
            return []
        a = qa.answer.view.raw.casefold()
        if not a.strip():
            return []
        useless = self._useless(qa, generated=qa_type is not None)
        if useless is None and qa_type is not None:  # (the model wrote the question too)
            useless = (self._named_in_question(qa) or _uncounted(qa) or _contentless(qa)
                       or self._named_for_how(qa, cap))
        if useless:
            return [self.reason("answer_mismatch", useless, self.p["penalty"],
                                qa.answer.view.raw[:60])]
        asks = qa.question.memo.get("asks")
        if asks is None:  # per question text
            q = qa.question.view.raw.casefold()
            if q.rstrip().endswith("?") and _elliptical(qa.question.words):
                q = f"what is the {q}"  # "Distribution?"
            asks = qa.question.memo["asks"] = _asks(q)
        if not asks and qa_type is not None and qa.question.words[:1] == ["who"]:
            # A generated "Who ...?" about an image asks for the patient ("Who is the most
            # likely donor?"); elsewhere "Who directed X?" asks for a name
            asks = "demographic"
        kind = None
        if asks == "modality":
            if not _MODALITY_A.search(a):
                kind = "an image type"
        elif asks == "colour":
            if not _COLOUR_A.search(a):
                kind = "a colour"
        elif asks == "demographic":
            a_f = qa.answer
            # (a bare "one" is no age: "affects only one person")
            # (nor a magnification: "H&E, x100" names no age)
            if not (a_f.sexes or a_f.age_ranges
                    or any(q.dim in _AGE_DIMS and (q.lo != 1 or q.dim) for q in a_f.numbers)
                    or any(t in lx.AGE_GROUPS for t in a_f.view.tokens)):
                kind = "an age or sex"
        elif asks == "morphology" and _SHAPE_Q.search(qa.question.view.text) and all(
                _COLOUR_A.fullmatch(w) for w in _WORD.findall(a) or ("",)):
            kind = "a shape"  # ("What shape are the lesions?" / "Violaceous.")
        elif asks == "morphology":
            # the answer names the disease, not what it looks like ("What is the morphology?"
            # / "Dermatofibroma"): every word of it may be in the caption
            if _disease_only(qa.answer.view.tokens, self.an.stop, cap, self.an.norm.key,
                             self._site_keys, titled=qa_type is not None):
                return [self.reason("answer_mismatch", "a question about how it looks answered "
                                    "with only a diagnosis (and where it is)", self.p["penalty"],
                                    qa.answer.view.raw[:60])]
        elif asks == "diagnosis":
            # (generated: "What is the diagnosis?" answered with a description; an answer of
            # only the kind of image gets its own reason below)
            if (qa_type is not None and _NAMING_Q.search(qa.question.view.text)
                    and not _modality_only(qa.answer.view.tokens, self.an.stop)
                    and _unnamed(qa, cap, self.an.stop, self.an.norm.key)):
                return [self.reason("answer_mismatch", "a diagnosis question answered "
                                    "without naming a disease", self.p["penalty"],
                                    qa.answer.view.raw[:60])]
        elif asks == "location" and not (qa.answer.sites or qa.answer.laterality):
            # Places are too many to list (organs, "sigmoid colon", "inferiorly"): flag only
            # an answer that is nothing but colour words, the common small-model slip, and
            # one with no word of place and no content word at all ("Affects the skin").
            # And one with no word of place that names the stain, magnification or kind of
            # image ("Verruca, nodular stage (H&E, x200)"): those are never a place. And one
            # that is only the caption's disease name ("Where are the lesions?" / "Psoriasis.";
            # "basal" in "Basal cell carcinoma." is no place either). Where the model wrote the
            # question, any answer with no word of place, or of spread for a distribution
            # ("What is the distribution?" / "Breslow thickness 0.8 mm, no ulceration."; "What
            # is the location?" / "Papeloid tumour nests."): in seven quick-start runs every
            # such answer was something else.
            words = _WORD.findall(a)
            if words and ((len(words) <= 4 and all(_COLOUR_A.fullmatch(w) for w in words))
                          or (not _LOCATION_A.search(a) and (
                              not (qa.answer_content or qa.answer.numbers)
                              or not _MODALITY_NAMES.isdisjoint(qa.answer.view.tokens)
                              or any(q.dim == "magnification" for q in qa.answer.numbers)
                              or (qa_type is not None and not (  # (the model's slip)
                                  "distribut" in qa.question.view.text
                                  and _DISTRIBUTION_A.search(a)))))
                          or _disease_only(qa.answer.view.tokens, self.an.stop, cap,
                                           self.an.norm.key, titled=qa_type is not None)):
                kind = "a location"
        if kind is None:
            stop = self.an.stop
            if (asks != "modality" and _modality_only(qa.answer.view.tokens, stop)
                    and (asks == "morphology"  # ("How does the image look?")
                         or any(t not in _IMAGE_WORDS and t not in stop and t not in _WH
                                for t in qa.question.words if t[0].isalpha()))):
                # "How are the vessels arranged?" / "Dermoscopic image.": the question names
                # something to tell about; the kind of image tells nothing of it
                detail = ("a diagnosis question answered with only the kind of image"
                          if asks == "diagnosis" else "the answer gives only the kind of image")
                return [self.reason("answer_mismatch", detail, self.p["penalty"],
                                    qa.answer.view.raw[:60])]
            return []
        return [self.reason("answer_mismatch", f"the question asks for {kind}, the answer "
                            "gives none", self.p["penalty"], qa.answer.view.raw[:60])]
