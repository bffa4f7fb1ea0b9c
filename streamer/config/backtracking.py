"""How much backtracking a plate format's regular expression can do on a plate's text.

Python's ``re`` backtracks: a pattern such as ``((A+)+)+B`` tries every way of splitting
the text between its repetitions before it gives up, which on 20 characters takes
minutes. A plate format runs on every read, so such a pattern must be refused when the
config is loaded, not found out at the gate.

The parsed pattern (``re._parser``, the parser ``re`` itself uses) is walked, counting the
ways it can match a text of at most :data:`MAX_TEXT` characters: a repetition of ``n``
possible counts gives ``n`` ways, one after another multiply, and alternatives add up when
they can start with the same character (otherwise the first character picks one). A
repetition whose inside can match in several ways multiplies those ways once per round:
that is where ``(A+)+``, ``(A|AB)+`` and ``(.*A){12}`` explode. A pattern past
:data:`MAX_WAYS` is refused. The count is an upper bound, so some harmless patterns are
refused too (``A*A*A*A*A*``); none of the presets comes near it.
"""

from __future__ import annotations

import string
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

#: The longest text a format is matched against (``plates.max_length`` allows no more).
MAX_TEXT = 20
#: Ways past which a pattern is refused: on 20 characters, well under a millisecond.
MAX_WAYS = 10_000
#: The characters of a normalised plate.
ALPHABET = frozenset(string.ascii_uppercase + string.digits)

_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}
_CATEGORIES = {
    sre.CATEGORY_DIGIT: frozenset(string.digits),
    sre.CATEGORY_WORD: ALPHABET,
    sre.CATEGORY_SPACE: frozenset(),
    sre.CATEGORY_LINEBREAK: frozenset(),
}
_NEGATED = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
    sre.CATEGORY_NOT_LINEBREAK: sre.CATEGORY_LINEBREAK,
}

NESTED = "a repetition inside a repetition, such as (A+)+"
OVERLAPPING = "alternatives that can match the same text, repeated, such as (A|AB)+"
IN_A_ROW = "repetitions in a row that can match the same characters, such as A*A*A*A*"


def backtracking(expression: str) -> str | None:
    """Why ``expression`` (a valid regex) can backtrack for too long, or ``None``.

    Example:
        >>> backtracking("((A+)+)+B")
        'a repetition inside a repetition, such as (A+)+'
        >>> backtracking("[A-Z]{2}[0-9]{4}[A-Z]{2}") is None
        True
    """
    counter = _Counter()
    counter.ways(_parser.parse(expression))
    return counter.reason


class _Counter:
    """Counts the ways of a parsed pattern; :attr:`reason` is why the first part past
    :data:`MAX_WAYS` got there."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def _bound(self, ways: int, reason: str) -> int:
        if ways > MAX_WAYS:
            self.reason = self.reason or reason
            return MAX_WAYS + 1
        return ways

    def ways(self, items: Any) -> int:
        """Ways of a sequence: the product of its items'."""
        total = 1
        for op, value in items:
            total = self._bound(total * self._item(op, value), IN_A_ROW)
        return total

    def _item(self, op: Any, value: Any) -> int:
        if op in _REPEATS:
            return self._repeat(*value)
        if op is sre.SUBPATTERN:
            return self.ways(value[3])
        if op is sre.ATOMIC_GROUP:
            return self.ways(value)
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            return self.ways(value[1])
        if op is sre.BRANCH:
            return self._branch(value[1])
        if op is sre.GROUPREF_EXISTS:
            return self._branch([branch for branch in value[1:] if branch is not None])
        return 1  # one character, an anchor, a back-reference

    def _branch(self, branches: list[Any]) -> int:
        ways = [self.ways(branch) for branch in branches]
        starts = [_first(branch) for branch in branches]
        overlap = any(
            (empty or other_empty or chars & other_chars)
            for index, (chars, empty) in enumerate(starts)
            for other_chars, other_empty in starts[index + 1 :]
        )
        # Alternatives that start differently: the first character picks one of them.
        return self._bound(sum(ways), OVERLAPPING) if overlap else max(ways, default=1)

    def _repeat(self, low: int, high: int, body: Any) -> int:
        inside = self.ways(body)
        narrowest = body.getwidth()[0]
        rounds = min(high, MAX_TEXT // narrowest if narrowest else MAX_TEXT)
        low = min(low, rounds)
        if inside == 1:  # one way per round: the count of rounds is the only choice
            return rounds - low + 1
        reason = NESTED if _repeats(body) else OVERLAPPING
        total = 0
        for count in range(low, rounds + 1):
            total = self._bound(total + inside**count, reason)
        return total


def _repeats(items: Any) -> bool:
    """Whether a parsed pattern holds a repetition of a varying count."""
    for op, value in items:
        if op in _REPEATS and value[0] != value[1]:
            return True
        parts = value if isinstance(value, tuple) else (value,)
        for part in parts:
            inner = part if isinstance(part, list) else [part]
            if any(isinstance(p, _parser.SubPattern) and _repeats(p) for p in inner):
                return True
    return False


def _first(items: Any) -> tuple[frozenset[str], bool]:
    """The characters a parsed pattern's match can start with, and whether it can match
    the empty text."""
    chars: frozenset[str] = frozenset()
    for op, value in items:
        more, empty = _first_of(op, value)
        chars |= more
        if not empty:
            return chars, False
    return chars, True


def _first_of(op: Any, value: Any) -> tuple[frozenset[str], bool]:
    if op is sre.LITERAL:
        return _folded(chr(value)), False
    if op is sre.NOT_LITERAL:
        return ALPHABET - _folded(chr(value)), False
    if op is sre.IN:
        return _members(value), False
    if op in _REPEATS:
        chars, empty = _first(value[2])
        return chars, empty or value[0] == 0
    if op is sre.SUBPATTERN:
        return _first(value[3])
    if op is sre.ATOMIC_GROUP:
        return _first(value)
    if op is sre.BRANCH:
        starts = [_first(branch) for branch in value[1]]
        return frozenset().union(*(s for s, _ in starts)), any(e for _, e in starts)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return frozenset(), True  # takes no character
    return ALPHABET, True  # any character (".", a back-reference, a condition)


def _folded(char: str) -> frozenset[str]:
    """The plate characters ``char`` matches, in either case (a pattern may ignore case)."""
    return ALPHABET & {char.upper(), char.lower()}


def _members(items: Any) -> frozenset[str]:
    """The plate characters a character class (``[…]``) matches."""
    chars: set[str] = set()
    negate = False
    for op, value in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            chars |= _folded(chr(value))
        elif op is sre.RANGE:
            low, high = value
            chars |= {c for c in ALPHABET if low <= ord(c) <= high or low <= ord(c.lower()) <= high}
        elif op is sre.CATEGORY and value in _CATEGORIES:
            chars |= _CATEGORIES[value]
        elif op is sre.CATEGORY and value in _NEGATED:
            chars |= ALPHABET - _CATEGORIES[_NEGATED[value]]
        else:
            chars |= ALPHABET
    return frozenset(ALPHABET - chars if negate else chars)
