"""Rule-based understanding, table by table: recogniser-style text in, meaning out."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from frontdesk.brain.profile import Choice, load_profile
from frontdesk.brain.understand import (
    When,
    choose_slot,
    detect_intent,
    extract_email,
    extract_name,
    extract_phone,
    is_question,
    match_choice,
    match_faq,
    match_service,
    parse_time,
    parse_when,
    sounds_complete,
    yes_no,
)

NY = ZoneInfo("America/New_York")
NOW = datetime(2025, 6, 10, 9, 30, tzinfo=NY)  # a Tuesday morning
PROFILE = load_profile()
FAQ = PROFILE.rendered_faq()
IGNORE = (PROFILE.business_name, PROFILE.agent_name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("Yeah.", True),
        ("yep", True),
        ("sure", True),
        ("uh huh", True),
        ("that works", True),
        ("that works for me", True),
        ("sounds good", True),
        ("Yes, I do.", True),
        ("no problem", True),
        ("okay", True),
        ("no", False),
        ("nope", False),
        ("nah", False),
        ("not really", False),
        ("no thanks", False),
        ("I don't", False),
        ("No, I haven't.", False),
        ("that doesn't work", False),
        ("I'm not sure", None),
        ("maybe", None),
        ("purple", None),
        ("", None),
    ],
)
def test_yes_no(text: str, expected: bool | None) -> None:
    assert yes_no(text) is expected


@pytest.mark.parametrize(
    ("text", "day", "part", "at"),
    [
        ("Thursday afternoon", date(2025, 6, 12), "afternoon", None),
        ("tomorrow at 10", date(2025, 6, 11), "morning", time(10, 0)),
        ("next Monday", date(2025, 6, 16), None, None),
        ("next thursday", date(2025, 6, 19), None, None),  # not this week's Thursday
        ("this friday", date(2025, 6, 13), None, None),
        ("the 3rd", date(2025, 7, 3), None, None),  # the 3rd of June has passed
        ("on the fifteenth", date(2025, 6, 15), None, None),
        ("june twenty first", date(2025, 6, 21), None, None),
        ("the 12th of july", date(2025, 7, 12), None, None),
        ("6/20", date(2025, 6, 20), None, None),
        ("2 pm", None, "afternoon", time(14, 0)),
        ("two thirty", None, "afternoon", time(14, 30)),
        ("at to thirty", None, "afternoon", time(14, 30)),  # "to" misheard for "two"
        ("noon", None, "afternoon", time(12, 0)),
        ("10:30 a.m.", None, "morning", time(10, 30)),
        ("ten in the morning", None, "morning", time(10, 0)),
        ("half past three", None, "afternoon", time(15, 30)),
        ("friday morning around nine", date(2025, 6, 13), "morning", time(9, 0)),
        ("later today after lunch", date(2025, 6, 10), "afternoon", None),
        ("in two weeks", date(2025, 6, 24), None, None),
    ],
)
def test_parse_when(text: str, day: date | None, part: str | None, at: time | None) -> None:
    when = parse_when(text, NOW)
    assert when is not None
    assert (when.day, when.part_of_day, when.at) == (day, part, at)


@pytest.mark.parametrize(
    "text", ["as soon as possible", "whenever is soonest", "the first available", "any time"]
)
def test_parse_when_soonest(text: str) -> None:
    assert parse_when(text, NOW) == When(soonest=True)


@pytest.mark.parametrize(
    "text", ["I need a cleaning", "my name is Dana", "the first one", "two", "yes please"]
)
def test_parse_when_nothing(text: str) -> None:
    assert parse_when(text, NOW) is None


@pytest.mark.parametrize(
    ("text", "bare", "expected"),
    [
        ("two", True, time(14, 0)),
        ("two", False, None),  # a bare number is only a time when choosing among times
        ("ten", True, time(10, 0)),
        ("quarter to five", False, time(16, 45)),
        ("9 o'clock", False, time(9, 0)),
    ],
)
def test_parse_time(text: str, bare: bool, expected: time | None) -> None:
    assert parse_time(text, bare_numbers=bare) == expected


SLOTS = [
    datetime(2025, 6, 12, 14, 0, tzinfo=NY),  # Thursday at 2 PM
    datetime(2025, 6, 12, 15, 30, tzinfo=NY),  # Thursday at 3:30 PM
    datetime(2025, 6, 13, 10, 0, tzinfo=NY),  # Friday at 10 AM
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the first one", 0),
        ("two works", 0),
        ("two o'clock is good", 0),
        ("three thirty", 1),
        ("the second one please", 1),
        ("friday at 10", 2),
        ("the one on friday", 2),
        ("the later one", 2),
        ("the last one", 2),
        ("the morning one", 2),
        ("the earlier one on thursday", 0),
        ("option two", 1),
        ("either is fine", 0),
        ("thursday", None),  # two Thursday times: ambiguous
        ("4 pm", None),  # not offered
        ("do you have anything on monday", None),
        ("hmm", None),
    ],
)
def test_choose_slot(text: str, expected: int | None) -> None:
    assert choose_slot(text, SLOTS, NOW) == expected


MONTH_START = datetime(2025, 7, 1, 8, 0, tzinfo=NY)
EARLY_SLOTS = [
    datetime(2025, 7, 1, 9, 0, tzinfo=NY),
    datetime(2025, 7, 1, 11, 0, tzinfo=NY),
    datetime(2025, 7, 2, 9, 0, tzinfo=NY),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the second one", 1),  # a position, though a slot falls on the 2nd
        ("the third", 2),
        ("the one on the 2nd", 2),
        ("july second", 2),
        ("today at 11", 1),
        ("tomorrow", 2),
    ],
)
def test_choose_slot_positions_are_not_dates(text: str, expected: int) -> None:
    assert choose_slot(text, EARLY_SLOTS, MONTH_START) == expected


@pytest.mark.parametrize(
    ("text", "bare", "expected"),
    [
        ("my name is Maria Lopez", False, "Maria Lopez"),
        ("it's John", False, "John"),
        ("this is dana smith calling about a cleaning", False, "Dana Smith"),
        ("Hi, I'm Jo Ann", False, "Jo Ann"),
        ("you can put it under kim lee", False, "Kim Lee"),
        ("I'm looking to book a cleaning", False, None),
        ("I'm a new patient", False, None),
        ("it's about my appointment", False, None),
        ("I'm calling for my son", False, None),
        ("maria lopez", True, "Maria Lopez"),
        ("sure it's kim", True, "Kim"),
        ("maria lopez", False, None),  # a bare name only counts right after asking for it
        ("yes", True, None),
        ("thursday afternoon", True, None),
    ],
)
def test_extract_name(text: str, bare: bool, expected: str | None) -> None:
    assert extract_name(text, bare=bare) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("five five five one two three four", "5551234"),
        ("555-123-4567", "5551234567"),
        ("my number is five five five, oh one two, three four five six", "5550123456"),
        ("it's 1 800 555 0199", "18005550199"),
        ("double five five, two one two, nine eight seven six", "5552129876"),
        ("five five five to one two three four five six", "5552123456"),
        ("my name is dana", None),
        ("five five five", None),  # too short to be a number
    ],
)
def test_extract_phone(text: str, expected: str | None) -> None:
    assert extract_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("maria at example dot com", "maria@example.com"),
        ("it's maria dot lopez at gmail dot com", "maria.lopez@gmail.com"),
        ("m a r i a at example dot co dot uk", "maria@example.co.uk"),
        ("john underscore smith at yahoo dot com", "john_smith@yahoo.com"),
        ("Maria.Lopez@Example.com.", "maria.lopez@example.com"),
        ("I'll be there at noon", None),
    ],
)
def test_extract_email(text: str, expected: str | None) -> None:
    assert extract_email(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want to speak to a real person", "human"),
        ("can I talk to someone", "human"),
        ("operator", "human"),
        ("I'm not interested", "not_interested"),
        ("please stop calling me", "not_interested"),
        ("I need to cancel my appointment", "cancel"),
        ("can I reschedule my cleaning appointment", "reschedule"),
        ("I'd like to book a cleaning", "book"),
        ("do you have any availability thursday", "book"),
        ("can I come in next week", "book"),
        ("no that's all thanks bye", "goodbye"),
        ("Okay, thank you, by.", "goodbye"),
        ("I'm all set", "goodbye"),
        ("sorry what?", "repeat"),
        ("can you say that again", "repeat"),
        ("do you take delta dental", "question"),
        ("where are you located", "question"),
        ("hmm", None),
    ],
)
def test_detect_intent(text: str, expected: str | None) -> None:
    assert detect_intent(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("are you open saturday", True), ("Is there parking?", True), ("my name is dana", False)],
)
def test_is_question(text: str, expected: bool) -> None:
    assert is_question(text) is expected


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("do you take Delta Dental?", "Which insurance plans do you accept?"),
        ("what insurance do you accept", "Which insurance plans do you accept?"),
        ("what are your hours", "What are your hours?"),
        ("are you open on saturday", "What are your hours?"),
        ("what time do you close on friday", "What are your hours?"),
        ("where are you located", "Where are you located?"),
        ("where is bright smile dental", "Where are you located?"),
        ("what's the address", "Where are you located?"),
        ("is there parking", "Is there parking?"),
        ("wait, sorry, where are you located?", "Where are you located?"),
        ("is there somewhere to park nearby", "Is there parking?"),
        ("how much is a cleaning", "How much is a cleaning?"),
        # A greeting misheard as other words is not part of the question.
        ("Hide there. What are your hours?", "What are your hours?"),
    ],
)
def test_match_faq_answers_from_the_profile(text: str, question: str) -> None:
    entry = match_faq(text, FAQ, ignore=IGNORE)
    assert entry is not None and entry.question == question


@pytest.mark.parametrize(
    "text",
    [
        "What's my insurance deductible?",  # shares "insurance" with an entry, still no answer
        "Can you fix my car?",
        "does my insurance cover whitening",
        "do you take aetna",  # a plan the profile does not list: no yes, no no
        "what's the weather like",
        "how do I get a refund",
        # One answerable question does not cover an unrelated second one.
        "What are your hours? And what's my deductible?",
    ],
)
def test_match_faq_does_not_invent_answers(text: str) -> None:
    assert match_faq(text, FAQ, ignore=IGNORE) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I need a cleaning", "Cleaning"),
        ("just a regular check up", "Checkup"),
        ("I want my teeth whiter", "Whitening"),
        ("I chipped my tooth", "Emergency exam"),
        ("my tooth hurts", "Emergency exam"),
        ("I want braces", None),
    ],
)
def test_match_service(text: str, expected: str | None) -> None:
    service = match_service(text, PROFILE.services)
    assert (service.name if service else None) == expected


PATIENT = (
    Choice(value="new", synonyms=("first time", "never been", "have not been", "no")),
    Choice(value="existing", synonyms=("been before", "returning", "yes")),
)


@pytest.mark.parametrize(
    ("text", "multiword_only", "expected"),
    [
        ("I'm new", False, "new"),
        ("I haven't been there before", False, "new"),  # "have not been" comes first
        ("yes I've been there before", False, "existing"),
        ("it's my first time", True, "new"),
        ("no", True, None),  # out of turn a bare "no" says nothing about being new
        ("purple", False, None),
    ],
)
def test_match_choice(text: str, multiword_only: bool, expected: str | None) -> None:
    choice = match_choice(text, PATIENT, multiword_only=multiword_only)
    assert (choice.value if choice else None) == expected


@pytest.mark.parametrize(
    ("text", "expecting", "expected"),
    [
        ("I'd like to come in on", None, False),
        ("Could we do next", None, False),  # bench/endpointing.py's commonest cut-off
        ("I'll take that.", None, True),
        ("I'd like to book for, um", None, False),
        ("cleaning and", None, False),
        ("the", None, False),
        ("uh", None, False),
        ("my number is", None, False),
        ("my number is five five five one two three four", None, False),
        ("Actually, wait...", None, False),
        ("hold on", None, False),
        ("five five five one two", "phone", False),
        ("maria at example dot", "email", False),
        ("my number is 555 123 4567", None, True),
        ("yes", None, True),
        ("yes it is", None, True),
        ("Thursday afternoon works", None, True),
        ("can I come in", None, True),
        ("I'd like to book a cleaning", None, True),
        ("five five five one two three four five six seven", "phone", True),
        # "before"/"after" as adverbs end a sentence; as prepositions they wait for a time
        ("I've been there before.", None, True),
        ("I have never been here before", None, True),
        ("Can you send me a reminder the day before?", None, True),
        ("I'd like to come in before", None, False),
        ("Is there anything after", None, False),
        # "bye" as Whisper often spells it; "by" after a verb still waits for a time
        ("Thank you, by.", None, True),
        ("Okay, by.", None, True),
        ("By.", None, True),
        ("I'll stop by", None, True),
        ("I need it done by", None, False),
        ("", None, False),
    ],
)
def test_sounds_complete(text: str, expecting: str | None, expected: bool) -> None:
    assert sounds_complete(text, expecting) is expected
