"""Rule-based understanding of what a caller said: pure functions over recogniser text.

Recognisers write lowercase text with little punctuation and numbers as words or digits, so
every rule here works on ``normalize``d words. Days, times and slot choices live in
``spoken_time``; phone numbers and emails in ``spoken_numbers``; both are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from frontdesk.brain.profile import Choice, FaqEntry, Service
from frontdesk.brain.spoken_numbers import digit_runs, digits_after_number_lead, extract_email
from frontdesk.brain.spoken_numbers import extract_phone as extract_phone
from frontdesk.brain.spoken_text import (
    STOPWORDS,
    find_phrase,
    has_phrase,
    normalize,
    stem,
    stems,
    word_set,
)
from frontdesk.brain.spoken_time import When, choose_slot, parse_time, parse_when

__all__ = [
    "Intent",
    "When",
    "choose_slot",
    "detect_intent",
    "extract_email",
    "extract_name",
    "extract_phone",
    "is_question",
    "match_choice",
    "match_faq",
    "match_service",
    "parse_time",
    "parse_when",
    "sounds_complete",
    "yes_no",
]

Intent = Literal[
    "human", "not_interested", "cancel", "reschedule", "book", "goodbye", "repeat", "question"
]

_YES = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "yea",
    "ya",
    "sure",
    "of course",
    "correct",
    "right",
    "absolutely",
    "definitely",
    "ok",
    "okay",
    "alright",
    "all right",
    "sounds good",
    "that works",
    "works for me",
    "that would work",
    "perfect",
    "great",
    "please",
    "uh huh",
    "mhm",
    "mm hmm",
    "i do",
    "i am",
    "i have",
    "i would",
    "i will",
    "go ahead",
    "fine",
    "certainly",
    "affirmative",
    "that is it",
    "exactly",
    "no problem",
    "no worries",
    "why not",
    "works",
    "good",
    "i would love",
    "let us do it",
)
_NO = (
    "no",
    "nope",
    "nah",
    "not really",
    "no thanks",
    "no thank you",
    "i do not",
    "i am not",
    "i have not",
    "i would not",
    "i will not",
    "negative",
    "not at all",
    "that is wrong",
    "incorrect",
    "does not work",
    "will not work",
    "that will not work",
    "neither",
    "none",
    "not that",
    "i can not",
    "can not make",
    "never",
)
_UNSURE = ("not sure", "do not know", "maybe", "no idea", "unsure", "not certain")


def yes_no(text: str) -> bool | None:
    """True for a yes ("yeah", "sure", "that works"), False for a no ("nope", "not really"),
    None when neither or unsure ("I'm not sure")."""
    spoken = normalize(text)
    if not spoken or has_phrase(spoken, _UNSURE, use_stems=False):
        return None
    yes = find_phrase(spoken, _YES, use_stems=False)
    no = find_phrase(spoken, _NO, use_stems=False)
    if yes and no:
        # "no problem" is a yes; otherwise the phrase that comes first (and is longest) wins
        yes_len, no_len = len(yes[1].split()), len(no[1].split())
        if yes[0] == no[0]:
            return yes_len > no_len
        if yes[0] < no[0] < yes[0] + yes_len:
            return True
        if no[0] < yes[0] < no[0] + no_len:
            return False
        return yes[0] < no[0]
    if yes:
        return True
    if no:
        return False
    return None


_HUMAN = (
    r"\b(speak|talk|chat) (to|with) (a |an |the |some |your )?(real |live |actual )?"
    r"(person|human|someone|somebody|receptionist|representative|agent|operator|staff|"
    r"manager|doctor|dentist|hygienist|people|front desk|office)",
    r"\b(real|live|actual) (person|human|people)\b",
    r"\bhuman being\b",
    r"\boperator\b",
    r"\brepresentative\b",
    r"\b(transfer|connect|put) me\b",
    r"\b(get|give) me (a |to a )?(person|human|someone)\b",
    r"\b(is there|can i get) (a person|someone|somebody|anyone)\b",
)
_NOT_INTERESTED = (
    r"\bnot interested\b",
    r"\bno longer interested\b",
    r"\bchanged my mind\b",
    r"\bstop calling\b",
    r"\bdo not call\b",
    r"\bremove me\b",
    r"\btake me off\b",
    r"\bdo not (want|need) (an|the|any|to book|to schedule|to make)\b",
    r"\bnot (looking|going) to book\b",
    r"\bno need\b",
)
_CANCEL = (r"\bcancel", r"\bcall off\b")
_RESCHEDULE = (
    r"\breschedul",
    r"\b(move|change|push|switch) (my|the|our) (appointment|booking|visit)",
    r"\bdifferent time for my\b",
)
_BOOK = (
    r"\bbook",
    r"\bappointment",
    r"\bschedul",
    r"\bcome in\b",
    r"\bcome by\b",
    r"\bget in\b",
    r"\bmake an? (appointment|booking)",
    r"\bset up\b",
    r"\bavailab",
    r"\bopenings?\b",
    r"\bslots?\b",
    r"\bsee (the|a) (dentist|doctor|hygienist)\b",
    r"\bget (my|a) (teeth|tooth)\b",
)
_GOODBYE = (
    r"\b(bye|goodbye|bye bye)\b",
    r"\bthat is (all|it|everything)\b",
    r"\bthat will be all\b",
    r"\bnothing else\b",
    r"\bi am (all )?(good|set|all set|done)\b",
    r"\bhave a (good|great|nice)",
    r"\bthat is all i needed\b",
    r"\bno that is it\b",
    r"\bthanks? (you )?(so much )?bye\b",
    r"\b(thanks|thank you|okay|ok|alright|good|bye) by$",  # "bye" as Whisper spells it
)
_REPEAT = (
    r"\b(repeat|say) (that|it|this)( again)?\b",
    r"\bsay again\b",
    r"\bcome again\b",
    r"\bpardon\b",
    r"\bwhat was that\b",
    r"\bwhat do you mean\b",
    r"\bwhat was the question\b",
    r"\bi did not (catch|hear|get) that\b",
    r"^(sorry |um |uh )?what$",
    r"^sorry$",
)
_QUESTION_START = re.compile(
    r"^(so |and |um |uh |also |oh |hi |hey |okay |ok |wait |sorry |actually |quick question )*"
    r"(what|where|when|how|who|why|which|do you|does|did|are you|are there|is there|is it|"
    r"is the|can i|can you|could you|could i|will|would you|should i|may i|have you|"
    r"i was wondering|i wanted to (know|ask)|tell me)\b"
)


def detect_intent(text: str) -> Intent | None:
    """What the caller wants, by priority: a person, not interested, cancel, reschedule,
    book, goodbye, a repeat of the last line, or a question. None when unclear."""
    spoken = normalize(text)
    if not spoken:
        return None
    table: tuple[tuple[Intent, tuple[str, ...]], ...] = (
        ("human", _HUMAN),
        ("not_interested", _NOT_INTERESTED),
        ("cancel", _CANCEL),
        ("reschedule", _RESCHEDULE),
        ("book", _BOOK),
        ("goodbye", _GOODBYE),
        ("repeat", _REPEAT),
    )
    for intent, patterns in table:
        if any(re.search(p, spoken) for p in patterns):
            return intent
    return "question" if is_question(text) else None


def is_question(text: str) -> bool:
    """Whether ``text`` asks something (a question mark, or a question's opening words)."""
    return text.strip().endswith("?") or bool(_QUESTION_START.search(normalize(text)))


_NAME_LEADS = re.compile(
    r"\b(?:my name is|name is|the name is|my names|call me|this is|it is|i am|im|here is|"
    r"you can put it under|put it under|under the name|first name is|last name is)\b "
)
_NOT_NAMES = word_set(
    """a an the and or but so um uh er yes yeah no nope not sure okay ok i you he she we they it
    is am are was be been calling call looking trying wondering just new existing returning
    patient here there good fine great well sorry free available interested hoping going
    about for with from to in on at of that this my your our their me him her them what when
    where why how who which booking book appointment appointments cleaning checkup whitening
    exam emergency tooth teeth pain also still really very actually already ready hi hello hey
    thanks thank please calling regarding like need want would could should can will wanted
    today tomorrow morning afternoon evening tonight week weekend next last first second
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december one two three four five six seven
    eight nine ten eleven twelve noon o oh dental dentist doctor office number phone email
    up down out back over off busy done all set having had got curious worried scared nervous
    afraid sick due overdue glad happy currently retired getting still sort kind pretty quite
    new sorry bit little hurting"""
)


def extract_name(text: str, *, bare: bool = False) -> str | None:
    """The caller's name ("my name is Maria Lopez", "it's John", "this is Dana Smith"), in
    title case. With ``bare`` (the agent just asked for it) a reply that is only a name counts.
    """
    spoken = normalize(text)
    for lead in _NAME_LEADS.finditer(spoken + " "):
        name = _name_words(spoken[lead.end() :].split())
        if name:
            return name
    if bare:
        stripped = re.sub(r"^((yes|yeah|sure|okay|ok|um|uh|so|it is|its|sure it is) )+", "", spoken)
        tokens = stripped.split()
        if 1 <= len(tokens) <= 3:
            name = _name_words(tokens)
            if name and len(name.split()) == len(tokens):
                return name
    return None


def _name_words(tokens: Sequence[str]) -> str | None:
    taken: list[str] = []
    for token in tokens:
        # "i am hoping", "this is calling": a verb or adjective ending, not a name
        verbish = len(token) > 4 and token.endswith(("ing", "ed", "ly"))
        if token in _NOT_NAMES or not token.isalpha() or verbish or len(taken) == 3:
            break
        taken.append(token)
    if not taken or len(taken[0]) < 2:
        return None
    return " ".join(word.capitalize() for word in taken)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def match_faq(
    text: str, faq: Sequence[FaqEntry], *, ignore: Iterable[str] = (), threshold: float = 0.7
) -> FaqEntry | None:
    """The FAQ entry that answers ``text``, or None.

    An entry matches when one of its keywords is in the question and at least ``threshold`` of
    the question's topic words are in the entry's vocabulary (keywords, question, answer).
    An unrelated question ("what's my insurance deductible?") has topic words no entry covers,
    so it matches nothing rather than getting the nearest answer.
    """
    ignored = {stem(w) for phrase in ignore for w in normalize(phrase).split()}
    # The topic is what the caller asks: "Hi there. What are your hours?" is about hours
    # (and a misheard "Hide there." must not make it look unrelated). Every question in
    # the line still counts, so a second, unrelated one keeps it out of the FAQ.
    sentences = _SENTENCE_END.split(text.strip())
    asked = " ".join(s for s in sentences if is_question(s)) or text
    topic = [
        s
        for w, s in zip(normalize(asked).split(), stems(asked), strict=True)
        if w not in STOPWORDS and s not in ignored
    ]
    if not topic:
        return None
    best: tuple[float, int, FaqEntry] | None = None
    for entry in faq:
        hits = sum(1 for k in entry.keywords if has_phrase(text, [k]))
        if not hits:
            continue
        vocabulary = set(stems(" ".join((*entry.keywords, entry.question, entry.answer))))
        coverage = sum(1 for s in topic if s in vocabulary) / len(topic)
        if coverage >= threshold and (best is None or (coverage, hits) > best[:2]):
            best = (coverage, hits, entry)
    return None if best is None else best[2]


def match_service(text: str, services: Sequence[Service]) -> Service | None:
    """The service ``text`` names (by name or one of its keywords), or None; the earliest
    mention wins."""
    best: tuple[int, Service] | None = None
    for service in services:
        found = find_phrase(text, (service.name, *service.keywords))
        if found and (best is None or found[0] < best[0]):
            best = (found[0], service)
    return None if best is None else best[1]


def match_choice(
    text: str, choices: Sequence[Choice], *, multiword_only: bool = False
) -> Choice | None:
    """The choice whose value or synonym ``text`` says first ("I haven't been before" picks
    "new" by its earlier "have not been"), or None. With ``multiword_only``, single words
    ("no", "new") do not count: for answers given before the question was asked."""
    best: tuple[int, int, Choice] | None = None
    for choice in choices:
        phrases = [
            p for p in (choice.value, *choice.synonyms) if not multiword_only or len(p.split()) > 1
        ]
        found = find_phrase(text, phrases, gap=2)
        if found:
            key = (found[0], -len(found[1].split()))
            if best is None or key < best[:2]:
                best = (*key, choice)
    return None if best is None else best[2]


_TRAILING_INCOMPLETE = word_set(
    """and or but because cause for on at in to with from of about into than then if the a an
    my your our his their some any um uh er erm hmm like is be its mm also plus just by near
    after before until between whose theres next which"""
)
# "can i come in", "hold on" end on a particle of the verb, not a dangling preposition
_PARTICLE_VERBS = word_set("come check drop stop pop fit squeeze get log sign fill walk go")
# "I've been there before", "the day after": an adverb, not a preposition still waiting for
# its object ("can I come in before", "sometime after").
_ADVERB_BEFORE = word_set(
    """been seen met done called visited went gone had did tried booked there here it that
    this them him her me you us day night week month year time times once twice ever"""
)
# "Thank you, by." is Whisper's spelling of "bye" as often as not; a preposition does not
# follow a thanks, an okay or a farewell.
_FAREWELL_BEFORE_BY = word_set("thanks thank you okay ok alright good great bye then")
_IS_SUBJECTS = word_set("it that this there he she")
_HOLDING = (
    r"\b(actually|wait|hold on|hang on|one (second|sec|moment)|let me (think|see|check)|"
    r"give me a (second|sec|moment)|i mean)$"
)


def sounds_complete(text: str, expecting: str | None = None) -> bool:
    """Whether ``text`` sounds like a finished turn, for endpointing: False when it ends on a
    conjunction, preposition, article or filler ("I'd like to come in on"), on "wait" /
    "hold on", or with a phone number still short of 10 digits."""
    raw = text.strip()
    spoken = normalize(raw)
    if not spoken or raw.endswith(("...", "…", ",", "-")):
        return False
    tokens = spoken.split()
    last, before = tokens[-1], (tokens[-2] if len(tokens) > 1 else "")
    dangling = last in _TRAILING_INCOMPLETE and not (
        (last in ("in", "on", "by") and before in _PARTICLE_VERBS)
        or (last == "is" and before in _IS_SUBJECTS)
        or (last in ("before", "after") and before in _ADVERB_BEFORE)
        or (last == "by" and (not before or before in _FAREWELL_BEFORE_BY))
    )
    if dangling or re.search(_HOLDING, spoken):
        return False
    after_lead = digits_after_number_lead(raw)
    if after_lead is not None and after_lead < 10:
        return False
    if expecting in ("phone", "digits"):
        longest = max((len(r) for r in digit_runs(raw)), default=0)
        if 0 < longest < 10:
            return False
    return not (expecting == "email" and extract_email(raw) is None)
