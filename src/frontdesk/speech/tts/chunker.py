"""Split a streaming reply into speakable chunks, as early as it is safe to.

The brain streams its reply in token-sized deltas; the voice can only synthesize whole
phrases, and time-to-first-audio is dominated by how long the first phrase is. So the first
chunk may end at a clause break (", ; : —") once it holds a few words, and every later chunk
ends at a sentence break (". ! ?" then whitespace, or a line break). A period with no space
after it ("2.30", "$4.50", "example.com", "jo@mail.com") is never a break, nor is the period
of a title ("Dr.", "Mr.") or of "e.g."/"i.e."; "a.m."/"p.m."/"etc." end a sentence only when
the next word is capitalised. When the next character is needed to decide, the chunker waits
for the next delta rather than guess.
"""

from __future__ import annotations

import re

_SENTENCE_END = ".!?"
_CLAUSE_END = ",;:"
_DASHES = "—–"  # em dash, en dash: a clause break whether or not spaced
_CLOSERS = "\"')]}»”’"  # may follow the sentence punctuation: 'He said "yes." Then'

# The period of these never ends a sentence (titles before a name, "for example" forms).
_NEVER_END = frozenset(
    {
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "prof.",
        "st.",
        "jr.",
        "sr.",
        "mt.",
        "vs.",
        "e.g.",
        "i.e.",
        "approx.",
        "dept.",
        "apt.",
        "ste.",
        "no.",
        "tel.",
        "ext.",
    }
)
# These end a sentence only if the next word starts with a capital letter ("10 a.m. Thanks").
_MAYBE_END = frozenset(
    {
        "a.m.",
        "p.m.",
        "etc.",
        "inc.",
        "ltd.",
        "co.",
        "corp.",
        "jan.",
        "feb.",
        "mar.",
        "apr.",
        "aug.",
        "sept.",
        "oct.",
        "nov.",
        "dec.",
    }
)

_LAST_WORD = re.compile(r"(\S+)$")
_WORD = re.compile(r"\S+")


class SentenceChunker:
    """Feed text deltas with :meth:`push`; get speakable chunks back as soon as they close.

    ``first_clause_words``: the first chunk may end at a clause break once it holds at least
    this many words (0 disables clause splitting). Chunks come back stripped, never empty.
    """

    def __init__(self, first_clause_words: int = 3) -> None:
        if first_clause_words < 0:
            raise ValueError(f"first_clause_words must be >= 0, got {first_clause_words}")
        self._first_clause_words = first_clause_words
        self._buffer = ""
        self._emitted = 0  # chunks returned since the last flush/reset

    def push(self, delta: str) -> list[str]:
        """Add a delta; return the chunks it completed (often none)."""
        if not isinstance(delta, str):
            raise TypeError(f"text delta must be str, got {type(delta).__name__}")
        self._buffer += delta
        chunks: list[str] = []
        while True:
            cut = self._find_break()
            if cut is None:
                break
            chunk, self._buffer = " ".join(self._buffer[:cut].split()), self._buffer[cut:]
            if chunk:
                chunks.append(chunk)
                self._emitted += 1
        if not self._buffer.strip():
            self._buffer = ""  # keep no leading whitespace between chunks
        return chunks

    def flush(self) -> str:
        """The rest of the text (the reply ended); empty if nothing is left. Starts a new reply."""
        rest = " ".join(self._buffer.split())
        self.reset()
        return rest

    def reset(self) -> None:
        """Drop buffered text and start a new reply (the next chunk may be a clause again)."""
        self._buffer = ""
        self._emitted = 0

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a chunk."""
        return self._buffer

    def _find_break(self) -> int | None:
        """Index just after the first break in the buffer, or None if there is none yet."""
        text = self._buffer
        clause_ok = self._emitted == 0 and self._first_clause_words > 0
        for i, ch in enumerate(text):
            if ch == "\n" and text[:i].strip():
                return i + 1
            if ch in _SENTENCE_END:
                cut = self._sentence_break(text, i)
                if cut is not None:
                    return cut if cut >= 0 else None
            elif clause_ok and (ch in _CLAUSE_END or ch in _DASHES):
                cut = self._clause_break(text, i)
                if cut is not None:
                    return cut if cut >= 0 else None
        return None

    @staticmethod
    def _sentence_break(text: str, i: int) -> int | None:
        """Break after the punctuation at ``i``: index, -1 for "wait for more", None for no."""
        j = i + 1
        while j < len(text) and (text[j] in _SENTENCE_END or text[j] in _CLOSERS):
            j += 1
        if j == len(text):
            return -1  # "2." may become "2.30": wait for the next delta
        if not text[j].isspace():
            return None  # "2.30", "example.com", "a.m" inside a token
        if text[i] == "." and j == i + 1:
            word = _LAST_WORD.search(text[: i + 1])
            token = word.group(1).lstrip("\"'([{«“‘").lower() if word else ""
            if token in _NEVER_END or _is_initial(token):
                return None
            if token in _MAYBE_END:
                nxt = text[j:].lstrip()
                if not nxt:
                    return -1
                if not nxt[0].isupper():
                    return None
        return j

    def _clause_break(self, text: str, i: int) -> int | None:
        """Break after the clause mark at ``i`` (first chunk only); -1 waits, None is no."""
        if len(_WORD.findall(text[:i])) < self._first_clause_words:
            return None
        j = i + 1
        if text[i] in _DASHES:
            return j
        if j == len(text):
            return -1  # "1," may become "1,000"
        if not text[j].isspace():
            return None  # "1,000", "10:30"
        before, after = text[:i].rstrip(), text[j:].lstrip()
        if before[-1:].isdigit():
            if not after:
                return -1
            if after[0].isdigit():
                return None  # "March 3, 2025" reads as one phrase
        return j


def _is_initial(token: str) -> bool:
    """A single letter and a period, as in "John F. Kennedy" (never a sentence end)."""
    return len(token) == 2 and token[0].isalpha()
