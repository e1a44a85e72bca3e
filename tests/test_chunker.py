"""SentenceChunker: where a streamed reply is cut into speakable chunks."""

from __future__ import annotations

import pytest

from frontdesk.speech.tts.chunker import SentenceChunker


def _feed(text: str, step: int, chunker: SentenceChunker | None = None) -> list[str]:
    """Chunks from ``text`` fed ``step`` characters at a time, then flushed."""
    chunker = chunker or SentenceChunker()
    chunks: list[str] = []
    for at in range(0, len(text), step):
        chunks += chunker.push(text[at : at + step])
    rest = chunker.flush()
    return [*chunks, rest] if rest else chunks


CASES = [
    # (why, reply text, expected chunks separated by " | ")
    ("sentences", "Hello there. How can I help? Great!", "Hello there. | How can I help? | Great!"),
    ("short first sentence is its own chunk", "Sure. I can do that.", "Sure. | I can do that."),
    (
        "first chunk may be a clause of 3+ words",
        "Let me check that, one moment please. Okay, it is booked, see you then.",
        "Let me check that, | one moment please. | Okay, it is booked, see you then.",
    ),
    ("too short for a clause", "Sure, I can help.", "Sure, I can help."),
    (
        "semicolon clause",
        "I have two times left; both are Friday.",
        "I have two times left; | both are Friday.",
    ),
    ("colon clause", "Here is what I have: Thursday.", "Here is what I have: | Thursday."),
    (
        "em dash clause",
        "I checked the calendar—Friday is free.",
        "I checked the calendar— | Friday is free.",
    ),
    ("decimal", "It costs 2.30 dollars. Okay?", "It costs 2.30 dollars. | Okay?"),
    ("money", "The fee is $4.50 per visit. Fine?", "The fee is $4.50 per visit. | Fine?"),
    ("clock time", "Come at 10:30 tomorrow. Bye.", "Come at 10:30 tomorrow. | Bye."),
    ("thousands", "We have 1,000 slots a year. Wow.", "We have 1,000 slots a year. | Wow."),
    (
        "date comma",
        "On Tuesday March 3, 2025 we open. Yes.",
        "On Tuesday March 3, 2025 we open. | Yes.",
    ),
    (
        "titles",
        "Dr. Smith and Mr. Jones can see you. Good.",
        "Dr. Smith and Mr. Jones can see you. | Good.",
    ),
    ("e.g.", "Bring an ID e.g. a license. Thanks.", "Bring an ID e.g. a license. | Thanks."),
    ("i.e.", "Pay the fee i.e. the total. Okay.", "Pay the fee i.e. the total. | Okay."),
    (
        "a.m. mid-sentence",
        "I have 9 a.m. or 2 p.m. tomorrow. Okay?",
        "I have 9 a.m. or 2 p.m. tomorrow. | Okay?",
    ),
    (
        "a.m. ends a sentence",
        "See you at 9 a.m. Thanks for calling.",
        "See you at 9 a.m. | Thanks for calling.",
    ),
    (
        "email",
        "Write to jo.smith@example.com today. Bye.",
        "Write to jo.smith@example.com today. | Bye.",
    ),
    ("url", "Visit www.example.com/book now. Bye.", "Visit www.example.com/book now. | Bye."),
    ("initials", "You will see John F. Kennedy. Bye.", "You will see John F. Kennedy. | Bye."),
    ("quote after period", 'He said "yes." Then he left.', 'He said "yes." | Then he left.'),
    ("?! run", "Really?! That is great.", "Really?! | That is great."),
    ("ellipsis", "Hmm... let me see.", "Hmm... | let me see."),
    ("line break", "Options:\n- Thursday\n- Friday", "Options: | - Thursday | - Friday"),
    ("no punctuation: all at flush", "okay see you then", "okay see you then"),
    ("whitespace collapses", "  Hello   there.   Bye  ", "Hello there. | Bye"),
    (
        "clause only in the first chunk",
        "Yes. I have Monday, Tuesday, and Friday.",
        "Yes. | I have Monday, Tuesday, and Friday.",
    ),
]


@pytest.mark.parametrize("step", [1, 3, 1000], ids=["char", "token", "whole"])
@pytest.mark.parametrize(("why", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_chunks(why: str, text: str, expected: str, step: int) -> None:
    assert _feed(text, step) == expected.split(" | "), why


def test_chunk_comes_out_as_soon_as_it_is_closed() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Sure") == []
    assert chunker.push(".") == []  # could still become "Sure.com": wait for one more char
    assert chunker.push(" ") == ["Sure."]
    assert chunker.push("Let me check") == []
    assert chunker.push(" that. And") == ["Let me check that."]
    assert chunker.pending.strip() == "And"


def test_first_clause_ready_before_the_sentence_ends() -> None:
    chunker = SentenceChunker()
    assert chunker.push("I have Thursday at two, ") == ["I have Thursday at two,"]
    assert chunker.push("or Friday at ten, which works") == []


def test_number_waits_for_next_delta() -> None:
    chunker = SentenceChunker()
    assert chunker.push("It is 2.") == []
    assert chunker.push("30 now. ") == ["It is 2.30 now."]


def test_clause_words_is_configurable() -> None:
    assert _feed("Okay then, yes it is.", 1, SentenceChunker(first_clause_words=2)) == [
        "Okay then,",
        "yes it is.",
    ]
    assert _feed("Let me check that, okay.", 1, SentenceChunker(first_clause_words=0)) == [
        "Let me check that, okay."
    ]


def test_flush_starts_a_new_reply() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Yes. And then") == ["Yes."]
    assert chunker.flush() == "And then"
    assert chunker.flush() == ""
    # a new reply: the first chunk may be a clause again
    assert chunker.push("Let me check that, please. ") == ["Let me check that,", "please."]


def test_bad_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="must be str"):
        SentenceChunker().push(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_clause_words"):
        SentenceChunker(first_clause_words=-1)
