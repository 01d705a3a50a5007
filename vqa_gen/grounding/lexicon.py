"""Static vocabulary the checks compile once: stop-words, image filler, synonyms, body sites.

Kept as plain immutable data (tuples, frozensets, mappings built at import and never mutated) so
that every `GroundingFilter` compiles the same vocabulary and the lists are easy to review.
General English comes first; the medical (mostly dermatology / pathology / radiology) entries
are additions on top, so the filter also works on non-medical passages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType


def _words(text: str) -> list[str]:
    """Whitespace-separated word list (keeps the long vocab blocks readable)."""
    return text.split()


words = _words

# Function words and words that carry no checkable claim on their own.
STOPWORDS: frozenset[str] = frozenset(_words("""
a an the this that these those there here it its it's itself they them their theirs we us our
you your i me my mine he him his she her hers himself herself one ones
is are was were be been being am do does did doing done have has had having
can could may might must shall should will would ought
of in on at by for with about against between into through during before after above below to
from up down out off over under again further then once upon onto within along across toward
towards around among amongst via per than as like unlike
and or but nor so yet if because while although though whereas whether either neither both
what which who whom whose when where why how whatever whichever
all any each every few more most other some such only own same too very just also even still
rather quite somewhat much many several various certain
s t d ll m o re ve y
yes yeah yep ok okay
oh ah ahh aw aww hmm uh haha hahaha lol lmao omg wow whoa hey hi hello yup nope
nah etc anyway anyways indeed apparently definitely certainly absolutely totally honestly
seriously literally
also thus therefore hence however moreover furthermore
well really actually basically essentially generally ever
something anything everything nothing someone anyone everyone
let lets get gets got getting make makes made making
say says said see sees saw seen look looks looked looking
"""))

# Words that frame an image description without asserting anything about its content.
# (They are what an answer adds around a grounded fact: "The image shows ...".)
FILLER: frozenset[str] = frozenset(_words("""
image images picture photo photograph photographs photography figure view shown shows show showing
depict depicts depicted depicting demonstrate demonstrates demonstrated demonstrating
reveal reveals revealed revealing display displays displayed displaying illustrate illustrates
illustrated illustrating present presents presented presenting presence
appear appears appeared appearing appearance visible visualized visualised seen observed observe
observes noted note notes evident apparent identified identify identifiable see
lesion lesions finding findings feature features area areas region regions site sites part parts
skin surface patient patients person individual case subject
located location locate situated found involve involves involving involved affecting affect affects
affected
characterized characterised characteristic consistent compatible suggestive suggest suggests
likely possibly probably possible probable seems seem seemed appears
type kind form sort aspect nature pattern overall
clinical clinically image-wise specimen sample
here there above below
which that
condition conditions
has have having contain contains containing with
describe described description
based
diagnosis diagnoses diagnosed diagnostic color colour shape size location type morphology
morphological texture distribution number count pattern modality technique configuration
arrangement consistency gender sex age body anatomical anatomic characteristics
characteristic structure structures kind category identity nature name called term termed known
used method procedure produced taken sequence level proportion changes change view measure
measures measured measuring measurement measurements size sized dimension dimensions roughly
mostly approximately about around nearly section sections slide slides scan scans stain stains
stained staining plus only
"""))

# How a slide was stained and magnified: copied from the caption's "(H&E, x100)" it says
# nothing about what the image shows, so it weighs little in the support score (an invented
# disease name beside a copied stain is not half supported).
PROTOCOL_TERMS: frozenset[str] = frozenset(_words("""
hematoxylin haematoxylin eosin pas giemsa gram grocott gomori trichrome reticulin van gieson
alcian congo masson fontana silver immunohistochemistry immunohistochemical ihc
"""))
PROTOCOL_TOKEN = re.compile(r"[x×]\d+")

# Negation cues (NegEx-style). Pre-triggers negate what follows; post-triggers what precedes.
NEG_PRE: tuple[str, ...] = (
    "no", "not", "without", "absence of", "absent", "lack of", "lacks", "lacking", "free of",
    "negative for", "never", "none", "nor", "neither", "denies", "denied", "rules out",
    "ruled out", "no evidence of", "no sign of", "no signs of", "cannot", "can't", "isn't",
    "aren't", "wasn't", "weren't", "doesn't", "don't", "didn't", "hasn't", "haven't", "hadn't",
    "non", "n't", "failed to", "fail to", "fails to", "unable to",
)
NEG_POST: tuple[str, ...] = (
    "absent", "not seen", "not present", "not observed", "not identified", "not noted",
    "not visible", "not detected", "was absent", "were absent", "is absent", "are absent",
    "ruled out", "was excluded", "were excluded", "negative",
)
# Words that end the scope of a negation cue.
NEG_TERMINATORS: frozenset[str] = frozenset(_words("""
but however although though yet except apart besides which who whereas while nevertheless
still whose compared versus vs than as because since so that when where until after before
"""))

# A negated relation denies the relation, not its terms: "did not influence overall survival"
# and "no association between X and Y" deny nothing about survival, X or Y, which the evidence
# may well affirm. After these auxiliaries a negation cue is followed by a verb ...
NEG_AUXILIARIES: frozenset[str] = frozenset(_words("""
do does did can could would should will may might must shall need has have had
"""))
# ... (cues that carry their auxiliary)
AUXILIARY_CUES: frozenset[str] = frozenset(_words("""
doesn't don't didn't cannot can't won't wouldn't couldn't shouldn't hasn't haven't hadn't
"""))
# ... except that a verb of presence, display, acquisition or report denies what follows: "does
# not show ulceration", "did not develop metastases", "had not received radiotherapy", "the
# passage does not mention X".
PRESENCE_VERBS: frozenset[str] = frozenset(_words("""
show shows showed shown showing have has had having contain contains contained reveal revealed
demonstrate demonstrated exhibit exhibited display displayed involve involves involved include
included present presented see seen saw observe observed detect detected identify identified
find found appear appeared affect affects affected extend extended reach reached spread feature
featured carry carried harbor harbour harbored harboured express expressed stain stained develop
developed occur occurred form formed produce produced bear borne experience experienced receive
received get got gotten suffer suffered exist existed use used undergo underwent undergone
require required need needed take took taken provide provided mention mentioned say said
state stated describe described discuss discussed report reported give gave given specify
specified indicate indicated list listed name named note noted cite cited offer offered
"""))
# Predicates of presence after a copula: "no vesicles are present" denies the vesicles.
PRESENCE_PREDICATES: frozenset[str] = frozenset(_words("""
present visible noted evident apparent identified detected observed seen found noticed
discernible detectable palpable recognised recognized there
"""))
# Words between a cue and the verb or predicate it negates: "did not significantly change".
NEG_ADVERBS: frozenset[str] = frozenset(_words("""
significantly statistically necessarily always substantially really further clearly directly
fully entirely actually markedly materially appreciably consistently reliably be been being
"""))
# Nouns of a relation between two terms: "no association between", "no effect on survival".
RELATION_NOUNS: frozenset[str] = frozenset(_words("""
association associations link links relationship relationships relation correlation
correlations difference differences effect effects impact influence interaction interactions
connection benefit benefits role advantage advantages superiority inferiority causal
"""))
# ... and their terms follow one of these: a relation noun before anything else is an absence
# ("no difference was seen").
RELATION_NOUN_LINKS: frozenset[str] = frozenset({"between", "with", "on", "of", "in", "to",
                                                 "for", "from", "among"})
# A place or setting after a denied thing is where it is absent, not denied itself: "no
# pustules on the nose", "no prognostic value in lung cancer patients".
LOCATIVE_PREPOSITIONS: frozenset[str] = frozenset(_words("""
in on at among amongst within inside across throughout during over under around near beneath
below above along
"""))
# "no evidence linking X to Y", "no data supporting it": the words that state a relation.
EVIDENCE_NOUNS: frozenset[str] = frozenset({"evidence", "data", "proof"})

YES_WORDS: frozenset[str] = frozenset({"yes", "yeah", "yep", "correct", "true", "indeed",
                                       "affirmative", "certainly", "definitely"})
NO_WORDS: frozenset[str] = frozenset({"no", "nope", "false", "incorrect", "negative"})
AUX_START: frozenset[str] = frozenset(_words("""
is are was were do does did can could has have had will would should shall may might must
"""))

# Irregular English verb forms -> base form, so "won"/"win", "found"/"find", "took"/"take"
# meet. Forms that are also common content words are left out (left, felt, rose, saw, lay, lead,
# ground, bound, wound, fell, found-as-in-establish is still "find": rare in captions).
IRREGULAR_VERBS: MappingProxyType[str, str] = MappingProxyType({
    f: base for base, forms in (
        ("begin", "began begun"), ("break", "broke broken"), ("bring", "brought"),
        ("build", "built"), ("buy", "bought"), ("catch", "caught"), ("choose", "chose chosen"),
        ("come", "came"), ("do", "did done"), ("draw", "drew drawn"), ("drink", "drank drunk"),
        ("drive", "drove driven"), ("eat", "ate eaten"), ("find", "found"), ("fly", "flew flown"),
        ("forget", "forgot forgotten"), ("freeze", "froze frozen"), ("get", "got gotten"),
        ("give", "gave given"), ("go", "went gone"), ("grow", "grew grown"), ("have", "had"),
        ("hear", "heard"), ("hide", "hid hidden"), ("hold", "held"), ("keep", "kept"),
        ("know", "knew known"), ("lose", "lost"), ("make", "made"), ("mean", "meant"),
        ("meet", "met"), ("pay", "paid"), ("ride", "rode ridden"), ("ring", "rang rung"),
        ("rise", "rose risen"), ("run", "ran"), ("say", "said"), ("see", "seen"),
        ("sell", "sold"), ("send", "sent"), ("shake", "shook shaken"), ("shine", "shone"),
        ("shoot", "shot"), ("sing", "sang sung"), ("sink", "sank sunk"), ("sit", "sat"),
        ("sleep", "slept"), ("speak", "spoke spoken"), ("spend", "spent"), ("stand", "stood"),
        ("steal", "stole stolen"), ("stick", "stuck"), ("strike", "struck"),
        ("swim", "swam swum"), ("take", "took taken"), ("teach", "taught"),
        ("tear", "tore torn"), ("tell", "told"), ("think", "thought"), ("throw", "threw thrown"),
        ("understand", "understood"), ("wake", "woke woken"), ("wear", "wore worn"),
        ("win", "won"), ("write", "wrote written"), ("arise", "arose arisen"),
        ("become", "became"), ("bleed", "bled"), ("feed", "fed"), ("fight", "fought"),
        ("flee", "fled"), ("forbid", "forbade forbidden"), ("seek", "sought"),
        ("spread", "spread"), ("swell", "swollen swelled"), ("undergo", "underwent undergone"),
    ) for f in (base, *forms.split())
} | {"rose": "rose"})

# Words that make a text a question or an instruction even without a '?'.
QUESTION_OPENERS: frozenset[str] = frozenset(_words("""
what which where who whom whose when why how whether
describe name identify list state specify explain give tell indicate characterize characterise
classify outline compare estimate count locate determine define mention provide report select
choose find interpret summarize summarise assess evaluate write discuss analyze analyse
elaborate examine look detail
"""))

# In a question, these (and the openers above) frame the request ("Give a short, detailed
# description"); they presuppose nothing about the image.
QUESTION_FRAME: frozenset[str] = QUESTION_OPENERS | frozenset(_words("""
short brief briefly detailed thorough thoroughly concise concisely careful carefully closely
main key overall summary words sentence sentences paragraph
"""))
# Frame only in open (wh-) questions: "What is the primary diagnosis?" presupposes nothing,
# but "Is this a primary tumour?" answered "Yes" claims it.
OPEN_QUESTION_FRAME: frozenset[str] = frozenset(_words("primary principal medical likely"))

# "Two and a half hours" is 2.5 hours (and not the numbers 2 and 0.5).
_HALF_WHOLES = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")


def _and_a_half(m: re.Match[str]) -> str:
    whole = m.group(1)
    return f"{whole if whole.isdecimal() else _HALF_WHOLES.index(whole) + 1}.5"


# Abbreviations and spelling variants rewritten on the raw lower-cased text before tokenising.
# Multi-word targets let "BCC" meet "basal cell carcinoma" token by token.
# (A replacement is a string, or a function of the match for `re.sub`.)
PHRASE_REWRITES: tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...] = (
    (r"\bh\s*&\s*e\b", "hematoxylin eosin"),  # (not "smith & edwards")
    (r"\bh\b\s+and\s+e\b", "hematoxylin eosin"),  # (not "rough and erythematous")
    (r"haematoxylin", "hematoxylin"),
    (r"\bbcc\b", "basal cell carcinoma"),
    (r"\bscc\b", "squamous cell carcinoma"),
    (r"\bmm\s+in\s+situ\b", "melanoma in situ"),
    (r"\bak\b", "actinic keratosis"),
    (r"\bsk\b", "seborrheic keratosis"),
    (r"\bmri\b", "magnetic resonance imaging"),
    (r"\bct\b", "computed tomography"),
    (r"\bcxr\b", "chest x ray"),
    (r"\bx-ray\b", "x ray"),
    (r"\bxray\b", "x ray"),
    (r"\bradiograph\w*", "x ray"),
    (r"\bus\b(?=\s+(?:image|scan|shows|of|demonstrat|reveal))", "ultrasound"),
    (r"\bultrasonograph\w*|\bsonograph\w*", "ultrasound"),
    (r"\bihc\b", "immunohistochemistry"),
    (r"\bhpf\b", "high power field"),
    (r"\bdermatoscop\w*|\bdermoscop\w*|\bepiluminescence microscop\w*", "dermoscopy"),
    (r"\bhistopatholog\w*|\bhistolog\w*|\bmicroscopic section", "histology"),
    (r"\bphotomicrograph\w*|\bmicrograph\w*", "histology"),
    (r"\bmagnification\b", "magnification"),
    (r"\bshingles\b", "herpes zoster"),
    (r"\bhives\b", "urticarial wheals"),
    (r"\bblackheads?\b", "open comedones"),
    (r"\bwhiteheads?\b", "closed comedones"),
    (r"\btoenails?\b", "toe nail"),
    (r"\b(?:big|great) toes?\b", "hallux"),
    (r"\bmammogra(?:m|ms|phy|phic)\b", "breast mammography"),
    (r"\b(?:o|e)sophagogastroduodenoscop\w*", "upper endoscopy ogd egd"),
    (rf"\b(\d+|{'|'.join(_HALF_WHOLES)}) and (?:an? )?half\b", _and_a_half),
    (r"\bhalf an? (?=[a-z])", "0.5 "),
    (r"\bfingernails?\b", "finger nail"),
    (r"\bcoronavirus disease[- ]?2019\b", "covid-19"),  # names, not a claimed 2019
    (r"\bcovid19\b", "covid-19"),
    (r"\b2019[- ]ncov\b", "sars-cov-2"),
    (r"\blower legs?\b", "leg"),
    (r"\bpap\b", "papanicolaou"),
    (r"\bfat[- ]sat(?:urated)?\b", "fat suppressed"),
    (r"\bposterior trunk\b", "back"),
    (r"\bdorsum\b(?!\s+of)", "back"),
    (r"\bupper back\b", "back"),
    (r"\blower back\b", "back"),
    (r"\banterior trunk\b", "chest"),
    (r"\bpost(?:erior)? auricular\b", "ear"),
    (r"\bretroauricular\b", "ear"),
    (r"\bleft-sided\b", "left"),
    (r"\bright-sided\b", "right"),
    (r"\bbilaterally\b", "bilateral"),
    (r"\bwell[- ]circumscribed\b", "well defined"),
    (r"\bwell[- ]demarcated\b", "well defined"),
    (r"\bsharply demarcated\b", "well defined"),
    (r"\bill[- ]defined\b", "poorly defined"),
    (r"\bpoorly demarcated\b", "poorly defined"),
)

# Single-word synonym groups: every member maps to the first one (the canonical key).
# Keys are compared after stemming, so list the base form only.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("red", "erythematous", "erythema", "reddish", "redness", "erythematosus", "crimson",
     "pinkish-red", "violaceous-red"),
    ("pink", "pinkish", "salmon", "rose", "rosy"),
    ("pale", "light", "faint", "pallid"),
    ("different", "varying", "various", "variable", "varied", "differing"),
    ("distal", "terminal"),
    ("proximal", "initial"),
    ("excoriation", "excoriated", "scratch", "scratches", "scratched", "scratching"),
    ("grouped", "clustered", "cluster", "clusters", "herpetiform", "clumped"),
    ("liver", "hepatic", "hepato"),
    ("kidney", "renal", "nephric"),
    ("lung", "pulmonary", "lungs"),
    ("heart", "cardiac"),
    ("brain", "cerebral"),
    ("stomach", "gastric"),
    ("colon", "colonic"),
    ("bone", "osseous", "bony"),
    ("fat", "fatty", "adipose", "lipid"),
    ("hallux", "halluces"),
    ("brown", "brownish", "tan", "hyperpigmented", "hyperpigmentation", "pigmented",
     "pigmentation", "melanotic", "dark-brown"),
    ("white", "whitish", "hypopigmented", "hypopigmentation", "depigmented", "depigmentation",
     "porcelain", "ivory"),
    ("black", "blackish", "jet-black"),
    ("purple", "violaceous", "purplish", "violet", "lilac", "livid"),
    ("yellow", "yellowish", "xanthomatous", "golden"),
    ("blue", "bluish", "blue-gray", "blue-grey", "grey-blue", "gray-blue"),
    ("gray", "grey", "grayish", "greyish"),
    ("skin-colored", "skin-coloured", "flesh-colored", "flesh-coloured", "skin-color",
     "normochromic"),
    ("tumor", "tumour", "neoplasm", "neoplasia", "growth", "mass"),
    ("color", "colour", "colored", "coloured", "hue"),
    ("hemorrhage", "haemorrhage", "bleeding", "bleed", "hemorrhagic", "haemorrhagic",
     "blood", "bloody", "hematoma", "haematoma"),
    ("edema", "oedema", "swelling", "swollen", "edematous", "oedematous"),
    ("ulcer", "ulceration", "ulcerated", "ulcerative", "ulcerating", "erosion", "eroded",
     "erosive"),
    ("scale", "scaly", "scaling", "desquamation", "squamous-appearing", "flaky", "flaking"),
    ("crust", "crusted", "crusting", "crusty", "scab", "eschar"),
    ("nodule", "nodular", "bump", "lump"),
    ("papule", "papular", "papulous"),
    ("plaque", "plaques", "plaque-like"),
    ("macule", "macular", "spot", "patch"),
    ("vesicle", "vesicular", "blister", "bulla", "bullous", "blistering"),
    ("pustule", "pustular"),
    ("keratosis", "keratotic", "hyperkeratosis", "hyperkeratotic", "keratinized",
     "keratinization"),
    ("atrophy", "atrophic"),
    ("fibrosis", "fibrotic"),
    ("necrosis", "necrotic"),
    ("inflammation", "inflammatory", "inflamed"),
    ("infection", "infected", "infectious"),
    ("malignant", "malignancy", "cancer", "cancerous", "carcinoma"),
    ("benign", "noncancerous", "non-cancerous"),
    ("nevus", "naevus", "nevi", "naevi", "mole", "nevi", "melanocytic-nevus"),
    ("melanoma", "melanomas"),
    ("wart", "verruca", "verrucae"),
    ("verrucous", "warty", "verruciform"),
    ("itchy", "pruritic", "pruritus", "itching", "itch"),
    ("painful", "tender", "pain", "tenderness"),
    ("round", "rounded", "circular", "oval", "ovoid"),
    ("irregular", "irregularly", "asymmetric", "asymmetrical", "uneven"),
    ("regular", "symmetric", "symmetrical", "uniform"),
    ("multiple", "numerous", "many", "several", "multifocal", "scattered", "various"),
    ("single", "solitary", "isolated", "lone", "solo"),
    ("large", "big", "giant", "huge", "sizable", "sizeable"),
    ("small", "tiny", "little"),
    ("raised", "elevated", "protruding", "exophytic"),
    ("flat", "flattened"),
    ("shiny", "glossy", "pearly", "translucent"),
    ("smooth",),
    ("rough", "coarse"),
    ("hair", "hairs", "hairy", "pilar"),
    ("vessel", "vascular", "vasculature", "vessels"),
    ("telangiectasia", "telangiectasias", "telangiectatic", "telangiectases"),
    ("border", "edge", "margin", "boundary", "periphery", "peripheral"),
    ("center", "centre", "central", "centrally", "middle"),
    ("defined", "demarcated", "circumscribed", "distinct"),
    ("face", "facial"),
    ("hand", "hands"),  # (not "manual": a handbook, "manual therapy", far more than the hand)
    ("arm", "arms", "brachial"),
    ("leg", "legs", "crural"),
    ("foot", "feet", "pedal"),
    ("finger", "fingers", "digit", "digital"),
    ("nail", "nails", "ungual", "subungual", "periungual"),
    ("abdomen", "abdominal", "belly", "stomach-area"),
    ("chest", "thorax", "thoracic", "pectoral"),
    ("trunk", "torso", "truncal"),
    ("back", "dorsal", "dorsum"),
    ("scalp", "scalps"),
    ("neck", "cervical"),
    ("ear", "ears", "auricular", "auricle", "pinna"),
    ("eye", "eyes", "ocular", "periocular", "periorbital", "eyelid"),
    ("mouth", "oral", "buccal", "lip", "lips", "perioral"),
    ("nose", "nasal"),
    ("cheek", "cheeks", "malar"),
    ("forehead", "brow"),
    ("genital", "genitals", "genitalia", "genital-area"),
    ("buttock", "buttocks", "gluteal"),
    ("armpit", "axilla", "axillary", "axillae"),
    ("groin", "inguinal"),
    ("sole", "plantar"),
    ("palm", "palmar"),
    ("leg", "lower-extremity", "lower-limb"),
    ("arm", "upper-extremity", "upper-limb"),
    ("woman", "female", "lady", "women", "females"),
    ("man", "male", "gentleman", "men", "males"),
    ("child", "children", "kid", "pediatric", "paediatric", "boy", "girl"),
    ("infant", "baby", "newborn", "neonate", "neonatal"),
    ("elderly", "older", "geriatric", "senior"),
    ("dermoscopy", "dermatoscopy", "dermoscopic", "dermatoscopic"),
    ("histology", "histopathology", "histological", "histologic", "biopsy"),
    ("ultrasound", "sonography", "ultrasonography", "sonographic"),
    ("photograph", "clinical-photo"),
    ("hematoxylin", "haematoxylin"),
    ("stain", "stained", "staining"),
    ("cell", "cells", "cellular"),
    ("cyst", "cystic"),
    ("scar", "scarring", "cicatricial"),
    ("thick", "thickened", "thickening"),
    ("hemangioma", "haemangioma"),
    ("anemia", "anaemia"),
    ("leukemia", "leukaemia"),
    ("esophagus", "oesophagus"),
    ("diarrhea", "diarrhoea"),
    ("fetus", "foetus"),
    ("pediatric", "paediatric"),
    ("orthopedic", "orthopaedic"),
    ("gynecology", "gynaecology"),
    ("estrogen", "oestrogen"),
    ("feces", "faeces"),
    ("behavior", "behaviour"),
    ("favorite", "favourite"),
    ("center", "centre"),
    ("organize", "organise"),
    ("recognize", "recognise"),
    # a place and its adjective ("an English rock band" / "formed in England"); not the
    # ones that are other words too (Poland / polish, Turkey / turkey, China / china)
    ("england", "english"), ("britain", "british"), ("france", "french"),
    ("germany", "german"), ("italy", "italian"), ("spain", "spanish"),
    ("portugal", "portuguese"), ("japan", "japanese"), ("korea", "korean"),
    ("india", "indian"), ("russia", "russian"), ("canada", "canadian"),
    ("mexico", "mexican"), ("brazil", "brazilian"), ("argentina", "argentinian", "argentine"),
    ("australia", "australian"), ("ireland", "irish"), ("scotland", "scottish"),
    ("wales", "welsh"), ("netherlands", "dutch"), ("sweden", "swedish"),
    ("norway", "norwegian"), ("denmark", "danish"), ("finland", "finnish"),
    ("greece", "greek"), ("egypt", "egyptian"), ("israel", "israeli"), ("iran", "iranian"),
    ("iraq", "iraqi"), ("pakistan", "pakistani"), ("vietnam", "vietnamese"),
    ("thailand", "thai"), ("philippines", "filipino", "philippine"),
    ("indonesia", "indonesian"), ("nigeria", "nigerian"), ("kenya", "kenyan"),
    ("ethiopia", "ethiopian"), ("africa", "african"), ("europe", "european"),
    ("asia", "asian"), ("america", "american"), ("cuba", "cuban"), ("jamaica", "jamaican"),
    ("switzerland", "swiss"), ("austria", "austrian"), ("belgium", "belgian"),
    ("hungary", "hungarian"), ("ukraine", "ukrainian"), ("peru", "peruvian"),
    ("chile", "chilean"), ("colombia", "colombian"), ("venezuela", "venezuelan"),
    ("scandinavia", "scandinavian"), ("hawaii", "hawaiian"), ("texas", "texan"),
    ("california", "californian"), ("arabia", "arabian"), ("sicily", "sicilian"),
)

# Body sites: canonical name -> more general sites that contain it.
SITE_PARENTS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "head": (), "scalp": ("head",), "face": ("head",), "forehead": ("face", "head"),
    "cheek": ("face", "head"), "nose": ("face", "head"), "ear": ("head",),
    "eye": ("face", "head"), "mouth": ("face", "head"), "chin": ("face", "head"),
    "tongue": ("mouth", "face", "head"), "temple": ("face", "head"),
    "neck": (), "trunk": (), "chest": ("trunk",), "breast": ("chest", "trunk"),
    "back": ("trunk",), "abdomen": ("trunk",), "flank": ("trunk",), "umbilicus": ("abdomen",
                                                                                 "trunk"),
    "shoulder": ("arm",), "arm": (), "forearm": ("arm",), "elbow": ("arm",), "wrist": ("arm",),
    "hand": ("arm",), "palm": ("hand", "arm"), "finger": ("hand", "arm"),
    "thumb": ("finger", "hand", "arm"), "nail": (),
    "leg": (), "thigh": ("leg",), "knee": ("leg",), "shin": ("leg",), "calf": ("leg",),
    "ankle": ("leg",), "foot": ("leg",), "sole": ("foot", "leg"), "heel": ("foot", "leg"),
    "toe": ("foot", "leg"), "hallux": ("toe", "foot", "leg"),
    "buttock": (), "groin": (), "genital": (), "armpit": (), "hip": (),
})

# A caption term that states another: a melanoma is a malignancy, so "no evidence of
# malignancy" contradicts it and "malignant" is supported by it.
IMPLIES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    w: ("malignant",) for w in _words("""melanoma melanomas carcinoma carcinomas sarcoma sarcomas
    lymphoma lymphomas leukaemia leukemia myeloma metastasis metastases metastatic
    adenocarcinoma mesothelioma glioblastoma""")} | {
    # what a name says ("coronavirus disease 2019" is rewritten to "covid-19"); a claim names
    # the disease where its evidence names the virus, and back
    "covid-19": ("coronavirus", "disease", "sars-cov-2"),
    "sars-cov-2": ("coronavirus", "virus", "covid-19")} | {
    # a stain of tissue sections: an H&E image is a histology image under a microscope
    w: ("histology", "histopathology", "microscopy") for w in ("hematoxylin", "eosin")})

# Numbers written as words (counts and ages).
NUMBER_WORDS: MappingProxyType[str, float] = MappingProxyType({
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12, "single": 1,
    "twice": 2, "double": 2, "triple": 3, "pair": 2, "couple": 2, "both": 2, "half": 0.5,
})
DECADE_WORDS: MappingProxyType[str, int] = MappingProxyType({
    "teens": 10, "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50,
    "sixties": 60, "seventies": 70, "eighties": 80, "nineties": 90,
})
ORDINAL_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                  "ninth")
_ORDINAL_TEENS = ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                  "sixteenth", "seventeenth", "eighteenth", "nineteenth")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# Ordinals in words, 1-99 ("fourth" for "4th", "twenty-first" for "21st").
ORDINAL_WORDS: MappingProxyType[int, str] = MappingProxyType({
    **{i + 1: w for i, w in enumerate(ORDINAL_UNITS)},
    **{i + 10: w for i, w in enumerate(_ORDINAL_TEENS)},
    **{20 + 10 * i: t[:-1] + "ieth" for i, t in enumerate(_TENS)},
    **{20 + 10 * i + j + 1: f"{t}-{u}" for i, t in enumerate(_TENS)
       for j, u in enumerate(ORDINAL_UNITS)},
})


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


# An ordinal in words and as written in digits ("tenth" / "10th"): one ordinal, either way.
ORDINAL_DIGITS: MappingProxyType[str, str] = MappingProxyType({
    w: f"{n}{_ordinal_suffix(n)}" for n, w in ORDINAL_WORDS.items()})
# "the fourth decade" (of life): ages 30-39
ORDINAL_DECADES: MappingProxyType[str, int] = MappingProxyType({
    ORDINAL_WORDS[n]: 10 * (n - 1) for n in range(1, 11)})

# Age words -> (min, max) age in years.
AGE_GROUPS: MappingProxyType[str, tuple[float, float]] = MappingProxyType({
    "newborn": (0, 0.2), "neonate": (0, 0.2), "neonatal": (0, 0.2), "infant": (0, 2),
    "baby": (0, 2), "toddler": (1, 4), "child": (0, 14), "children": (0, 14), "kid": (0, 14),
    "boy": (0, 17), "girl": (0, 17), "pediatric": (0, 17), "paediatric": (0, 17),
    "adolescent": (10, 19), "teenager": (12, 19), "teen": (12, 19), "teenage": (12, 19),
    "young": (12, 45), "adult": (18, 120), "middle-aged": (38, 67), "elderly": (60, 120),
    "older": (50, 120), "old": (55, 120), "geriatric": (65, 120), "senior": (60, 120),
    })

SEX_WORDS: MappingProxyType[str, str] = MappingProxyType({
    "man": "m", "men": "m", "male": "m", "males": "m", "boy": "m", "boys": "m",
    "gentleman": "m", "he": "m", "his": "m", "him": "m", "himself": "m", "husband": "m",
    "father": "m", "son": "m", "brother": "m", "mr": "m", "masculine": "m",
    "woman": "f", "women": "f", "female": "f", "females": "f", "girl": "f", "girls": "f",
    "lady": "f", "she": "f", "her": "f", "hers": "f", "herself": "f", "wife": "f",
    "mother": "f", "daughter": "f", "sister": "f", "mrs": "f", "ms": "f", "pregnant": "f",
    "feminine": "f",
})
# Sex words that are only pronouns: weak evidence, never a lone reason to reject.
SEX_PRONOUNS: frozenset[str] = frozenset({"he", "his", "him", "himself", "she", "her", "hers",
                                          "herself"})

# Endings of a disease name's head word ("carcinoma", "psoriasis", "naevus", "dermatitis")
DISEASE_ENDS: tuple[str, ...] = ("oma", "omas", "itis", "osis", "iasis", "naevus", "nevus",
                                  "naevi", "nevi", "disease", "syndrome", "dermatosis",
                                  "keratosis")

# Topics an image cannot show: question cue regex -> words whose presence in the caption makes
# the topic answerable after all.
UNANSWERABLE_TOPICS: tuple[tuple[str, str, str], ...] = (
    ("treatment",
     r"\b(treat\w*|therap\w*|manag\w*|cure[sd]?|curable|remed\w*|surgery|surgical|excis\w*|"
     r"remov\w*|medication\w*|medicine\w*|drugs?|prescri\w*|ointment|cream|antibiotic\w*|"
     r"steroid\w*|dose|dosage)\b",
     r"treat|therap|manag|excis|remov|surg|cryo|laser|medicat|prescri|steroid|antibiot|"
     r"ointment|cream|cure|resolv|improv|respond|dose|regimen|administ|chemo|radiat"),
    ("prognosis",
     r"\b(prognos\w*|outcome|survival|life expectancy|mortality|recur\w*|progress\w*|"
     r"worsen\w*|evolv\w*|go away|resolve on its own|heal on its own|fatal|deadly|outlook)\b",
     r"prognos|outcome|surviv|mortal|recur|progress|evolv|resolv|heal|died|death|fatal|follow"),
    ("cause",
     r"\b(caus\w*|etiolog\w*|aetiolog\w*|why does|why did|why is|why are|reason for|"
     r"trigger\w*|risk factors?|due to what|origin of|pathogenesis)\b",
     r"caus|due to|etiolog|aetiolog|secondary to|induced|related to|after|following|trigger|"
     r"result|associat|from|because|exposure|bite|trauma|infect"),
    ("contagion",
     r"\b(contagio\w*|infectious to|transmi\w*|spread to others|catch(?:ing)? it|"
     r"pass(?:ed)? on|communicable|hereditary|inherit\w*|genetic)\b",
     # (spread to other people; not "pagetoid spread", "superficial spreading melanoma")
     r"contagio|transmi|communicab|heredit|inherit|genetic|familial|person[- ]to[- ]person|"
     r"outbreak|epidemic|spread\w* (?:to|between|among|within) (?:other|people|person|"
     r"contact|famil|household|sibling|partner|child)"),
    ("epidemiology",
     r"\b(most (?:common|frequent|prevalent)|how (?:common|frequent|rare)|prevalen\w*|"
     r"incidence|epidemiolog\w*|who (?:gets|is at risk)|how many people)\b",
     r"common|frequen|prevalen|inciden|rare|epidemiolog|per \d|population"),
    ("advice",
     r"\b(should (?:the patient|they|he|she|i|we|you)|advi[sc]\w*|recommend\w*|"
     r"what (?:can|should) be done|need to see|see a doctor|consult\w*|prevent\w*|avoid\w*|"
     r"precaution\w*|lifestyle)\b",
     r"advi|recommend|consult|prevent|avoid|refer|instruct|counsel"),
    ("history",
     r"\b(how long (?:has|have|had|did|does)|since when|when did|family history|"
     r"medical history|history of|past history|previous(?:ly)?|duration|first (?:appear|notic)\w*|"
     r"symptoms?|feel|itch\w*|pain\w*|hurt\w*|complain\w*|occupation|diet|smok\w*|"
     r"alcohol|allerg\w*|travel\w*|sun exposure)\b",
     r"\b(?:1[5-9]|20)\d\d\b|\b(?:january|february|march|april|may|june|july|august|"
     r"september|october|november|december)\b|"
     r"histor|(?:for|over|past|last) (?:the )?(?:\d+|\w+ )?(?:years?|months?|weeks?|days?)\b|"
     r"since|ago|durat|previous|prior|family|onset|present for|"
     r"itch|prurit|pain|tender|symptom|complain|report|smok|alcohol|allerg|travel|exposure|"
     r"occupation|diet|first"),
)

# Phrases an answer uses when it recites textbook knowledge instead of the picture.
GENERAL_KNOWLEDGE_CUES: tuple[str, ...] = (
    r"\bis (?:a )?(?:common|rare|benign|chronic) (?:\w+ )?(?:condition|disease|disorder|type)\b",
    # a definition of the disease rather than what the image shows ("... keratosis is a skin
    # condition that is characterized by ...", "... is a skin condition that affects only males")
    r"\b(?:is|are) an? (?:\w+ )?(?:skin )?(?:condition|disease|disorder|infection) "
    r"(?:that|which|characteri[sz]ed|caused|in which)\b",
    # what kind of disease it is, which no image shows ("The condition is a genetic
    # disorder."); after the definition above, which it would otherwise cut short
    r"\b(?:is|are) an? (?:genetic|hereditary|inherited|autoimmune|infectious|contagious|"
    r"viral|bacterial|fungal|parasitic) (?:skin )?(?:condition|disease|disorder|infection)\b",
    r"\b(?:is|are) (?:commonly|usually|typically|often|frequently|generally|mostly) "
    r"(?:caused|found|seen|associated|treated|managed|diagnosed|characterized|characterised)\b",
    r"\b(?:is|are) caused by\b", r"\bcan be (?:treated|managed|cured|prevented|removed)\b",
    r"\btreatment (?:options?|includes?|may include|involves?)\b", r"\brisk factors?\b",
    r"\b(?:is|are|not) contagious\b", r"\bcan spread\b", r"\bprognosis is\b",
    r"\bit is (?:important|recommended|advisable|best)\b",
    r"\b(?:consult|see|visit) (?:a |your |the )?(?:doctor|dermatologist|physician|"
    r"healthcare|health care|specialist|medical professional)\b",
    r"\bhealthcare (?:provider|professional)\b", r"\bin general\b", r"\bgenerally speaking\b",
    r"\bis known (?:to|for|as)\b", r"\bis associated with\b", r"\bmost common(?:ly)?\b",
    r"\bis (?:more )?(?:common|prevalent) in\b", r"\btypically (?:presents?|affects?|occurs?)\b",
    r"\boften (?:presents?|affects?|occurs?|resolves?)\b",
    r"\b(?:topical|oral|systemic) (?:steroids?|corticosteroids?|antibiotics?|antifungals?|"
    r"treatment|therapy|medication)\b",
    r"\bsurgical (?:excision|removal)\b", r"\bcryotherapy\b", r"\bphotodynamic\b",
    r"\bsun (?:protection|avoidance)\b", r"\bsunscreen\b", r"\bgood hygiene\b",
    r"\bself-limiting\b", r"\bheals? (?:on its own|spontaneously)\b",
)

LEAKAGE_CUES: tuple[str, ...] = (
    r"\bcaptions?\b", r"\bcaptioned\b", r"\bthe (?:provided |given |above |accompanying )?"
    r"(?:text|description|legend)\b",
    r"\bfig(?:ure)?\.?\s*\d+[a-z]?\b", r"^(?:the )?figure\b", r"\blegend\b",
    r"\b(?:this|the) figure\b", r"\bfigure (?:shows|depicts|demonstrates|illustrates)\b",
    r"\bpanel\s+[a-h0-9]\b", r"\bas (?:described|mentioned|"
    r"stated|noted|indicated|specified|given|provided)(?: (?:in|above|earlier|before))?\b",
    r"\baccording to the (?:caption|text|description|legend|report|passage|context|figure|"
    r"information|provided|given|image description)\b", r"\bthe (?:image )?description\b",
    r"\b(?:described|mentioned|stated) (?:in|by) the\b", r"\bthe legend\b",
    # meta-questions about how the source text is organised, not about the image
    r"\bhow many (?:types|kinds|sorts|categories) of (?:diagnos[ie]s|conditions?|findings?|"
    r"descriptions?|questions?|answers?|labels?)\b",
)

# Substrings at least one of which every LEAKAGE_CUES match contains: a cheap gate before the
# regex (tests check every cue against it).
LEAKAGE_TRIGGERS: tuple[str, ...] = (
    "caption", "text", "description", "legend", "fig", "panel", "described", "mentioned",
    "stated", "noted", "indicated", "specified", "given", "provided", "according to",
    "how many")

REFUSAL_CUES: tuple[str, ...] = (
    r"\bi (?:cannot|can ?not|can't|am unable to|am not able to|'m unable to|'m not able to) "
    r"(?:see|view|access|determine|tell|provide|identify|assess|make|give|diagnose|answer)\b",
    r"\bas an ai\b", r"\bi'?m (?:just )?an ai\b", r"\blanguage model\b",
    r"\bi(?:'m| am) (?:unable|not able|sorry)\b", r"\bi'?m sorry\b", r"\bi apologi[sz]e\b",
    r"\b(?:it is |it's )?(?:not possible|impossible) to (?:determine|tell|say|know|assess|"
    r"identify|see)\b",
    r"\bcannot be (?:determined|assessed|seen|identified|known|answered|evaluated|inferred)\b",
    r"\b(?:unable|not able) to (?:determine|tell|assess|identify|see|know)\b",
    r"\bi (?:do not|don't) have (?:access|the ability|enough)\b", r"\bno image\b",
    r"\bnot (?:enough|sufficient) information\b", r"\binsufficient information\b",
    r"\b(?:is |are |was )?not (?:mentioned|specified|provided|stated|given|available|"
    r"described|indicated|clear from)\b", r"^(?:unknown|n/?a|none given|unclear|"
    r"not applicable|i don't know|unsure|uncertain)\.?$",
    r"\bwithout (?:seeing|viewing|access to) the image\b",
)

# Same for REFUSAL_CUES, except the whole-answer cues ("Unknown.", "N/A", "I don't know"): texts
# shorter than REFUSAL_SHORT characters that start with their first letters (u, n, i) are
# searched too (`checks.leakage`).
REFUSAL_TRIGGERS: tuple[str, ...] = (
    "cannot", "can not", "can't", "unable", "not able", "an ai", "language model", "sorry",
    "apologi", "possible", "have", "no image", "information", "not ", "without")
REFUSAL_SHORT = 24

# A whole reply that declines the task ("I'm sorry, I can't help with that"), as opposed to an
# answer that says it cannot tell (REFUSAL_CUES): the pipeline names such a failure `refusal`.
TASK_REFUSAL_CUES: tuple[str, ...] = (
    r"\bI(?:'|’)?m sorry\b", r"\bI am sorry\b", r"\bI apologi[sz]e\b",
    r"\bI (?:can(?:'|’)?t|cannot|can not|won(?:'|’)?t|am (?:not able|unable)|"
    r"(?:'|’)m (?:not able|unable)) (?:to )?"
    r"(?:help|assist|comply|provide|do|answer|create|generate|write|fulfil|fulfill)",
    r"\bas an AI\b", r"\bI must decline\b", r"\bagainst (?:my|the) (?:guidelines|policy|policies)",
)

# Opposites: an answer word whose opposite the caption states (and which the caption does not
# state itself) is a contradiction, not just an omission.
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("upper", "lower"), ("superior", "inferior"), ("anterior", "posterior"),
    ("medial", "lateral"), ("proximal", "distal"), ("left", "right"), ("internal", "external"),
    ("increased", "decreased"), ("benign", "malignant"), ("acute", "chronic"),
    ("large", "small"), ("central", "peripheral"), ("dorsal", "ventral"), ("artery", "vein"),
    ("arterial", "venous"), ("open", "closed"), ("hyperechoic", "hypoechoic"),
    ("hyperdense", "hypodense"), ("hyperintense", "hypointense"), ("thick", "thin"),
    ("smooth", "rough"), ("regular", "irregular"), ("symmetric", "asymmetric"),
    ("well", "poorly"), ("flat", "raised"), ("single", "multiple"), ("solid", "cystic"),
    ("intact", "torn"), ("normal", "abnormal"), ("present", "absent"), ("early", "late"),
    ("high", "low"), ("mild", "severe"), ("focal", "diffuse"), ("unilateral", "bilateral"),
    ("horizontal", "vertical"), ("superficial", "deep"), ("primary", "secondary"),
    ("nodular", "superficial"), ("invasive", "in-situ"), ("wet", "dry"), ("hot", "cold"),
    ("hyperpigmented", "hypopigmented"), ("red", "white"), ("black", "white"),
    # general opposites (reports, summaries, dialogue)
    ("good", "bad"), ("best", "worst"), ("better", "worse"), ("positive", "negative"),
    ("success", "failure"), ("strong", "weak"), ("win", "lose"), ("won", "lost"),
    ("rise", "fall"), ("gain", "loss"), ("profit", "loss"), ("include", "exclude"),
    ("maximum", "minimum"), ("majority", "minority"), ("accept", "reject"),
    ("cheap", "expensive"), ("fast", "slow"), ("easy", "difficult"), ("safe", "dangerous"),
    ("true", "false"), ("higher", "lower"), ("above", "below"), ("before", "after"),
    ("first", "last"), ("private", "public"), ("north", "south"), ("east", "west"),
    ("import", "export"), ("buy", "sell"), ("support", "oppose"), ("top", "bottom"),
    ("inside", "outside"), ("rural", "urban"), ("rich", "poor"), ("happy", "sad"),
    ("increase", "decrease"), ("increasing", "decreasing"), ("expand", "shrink"),
    # superlatives ("the smallest contributor" for "the largest"; comparatives are left out:
    # "a longer treatment prevents it" restates "with a shorter one, more returned")
    ("largest", "smallest"), ("biggest", "smallest"), ("highest", "lowest"),
    ("longest", "shortest"), ("oldest", "youngest"), ("earliest", "latest"),
    ("multicellular", "unicellular"),
)
# Prefixes that make a word's opposite ("suitable" / "unsuitable", "motivate" / "demotivate"):
# a spelling or stem match between such a pair is no support (`NEGATING_PREFIXES`), and an
# answer word the caption states only with `OPPOSITE_PREFIXES` added or removed contradicts it
# (the narrower list: "de-", "dis-", "in-" also start words that are no opposites: "deliver",
# "disease", "insight").
NEGATING_PREFIXES: tuple[str, ...] = ("non-", "non", "un", "dis", "de", "in", "im", "ir", "il",
                                      "anti", "a")
OPPOSITE_PREFIXES: tuple[str, ...] = ("non-", "non", "un")
# Words in un- that are no opposite of the rest ("unless" is no "less")
NOT_OPPOSITES: frozenset[str] = frozenset(_words("""
unless until unto unlike under understand understood unite united unity union unique universe
universal university unit units uniform unison unanimous unveil unravel uncle
"""))
# Closed classes where naming a member the caption does not name, when the caption names
# another member, is a contradiction rather than an omission (caption "brown", answer "pink";
# caption "papule", answer "nodule"). Synonyms (erythematous=red, pigmented=brown) share a key.
COLOUR_TERMS: frozenset[str] = frozenset(_words("""
red pink brown white black purple yellow blue gray green orange skin-colored
"""))
# Neighbouring colours: naming one when the caption names the other is a loose paraphrase
# (erythematous described as pink), unsupported but not a contradiction.
COLOUR_NEIGHBOURS: tuple[tuple[str, str], ...] = (
    ("red", "pink"), ("red", "purple"), ("pink", "purple"), ("brown", "black"),
    ("brown", "yellow"), ("blue", "gray"), ("white", "gray"), ("pink", "skin-colored"),
    ("white", "yellow"), ("black", "gray"), ("blue", "purple"))
# Months and weekdays: "born in December" for "born November 15" ("may" and "march" are
# left out: they are also a verb)
CALENDAR_TERMS: tuple[frozenset[str], ...] = (
    frozenset(_words("""january february april june july august september october november
    december""")),
    frozenset(_words("monday tuesday wednesday thursday friday saturday sunday")))
MORPHOLOGY_TERMS: frozenset[str] = frozenset(_words("""
macule papule plaque nodule vesicle pustule wheal cyst comedone
"""))
# Things an image shows that a question can presuppose ("How are the vessels arranged?"): a
# generated question naming one its caption does not mention asks about something invented.
# (Not the words that name any lesion, "tumour" or "mass" for a carcinoma, nor diseases.)
FINDING_TERMS: frozenset[str] = MORPHOLOGY_TERMS | frozenset(_words("""
patch bulla blister erosion ulcer ulceration crust scale scar vessel telangiectasia lacuna
septum globule dot network streak pseudopod milia blotch rim halo hypha spore abscess
infiltrate
"""))

# Words that only say what kind of thing a question asks about ("Is the disease Kaposi
# sarcoma?", "Is the lesion on the left cheek?"): they name nothing in the image.
KIND_NOUNS: frozenset[str] = frozenset(_words("""
disease condition disorder diagnosis lesion lesions image picture photo photograph type kind
entity
"""))

# Predicates that make "No" to "Is the right eye affected?" undecidable from the terms alone.
STATE_PREDICATES: frozenset[str] = frozenset({
    "affected", "involved", "spared", "normal", "abnormal", "intact", "healthy", "unaffected",
    "clear", "changed", "preserved", "damaged", "diseased"})
