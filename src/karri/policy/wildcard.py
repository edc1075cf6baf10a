"""Wildcard matching for the policy language, in linear passes and without regular expressions.

A pattern is ``*`` (any run of characters) and ``?`` (any one character) between literal
pieces. The text between two stars has a fixed length, so the first piece must match at the
start, the last at the end, and each piece in between at its leftmost place after the one
before it: no backtracking, whatever the user wrote (a regular expression of ``.*`` built from
user input once took hours on 250 characters; see karri.cloud.filters).

Parts of a pattern can be literal: the text a policy variable stands for, or ``${*}``, is
matched as it is, its ``*`` and ``?`` included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Matcher = Callable[[str], bool]
# A pattern as parts: (text, whether its * and ? are wildcards).
Parts = Iterable[tuple[str, bool]]


class _Piece:
    """Literal characters between two stars; ``None`` stands for ``?``."""

    __slots__ = ("length", "plain", "text", "wild")

    def __init__(self, chars: list[str | None]) -> None:
        self.length = len(chars)
        self.plain = None not in chars
        self.text = "".join(c if c is not None else "?" for c in chars)
        self.wild = tuple(i for i, c in enumerate(chars) if c is None)

    def at(self, value: str, position: int) -> bool:
        if self.plain:
            return value.startswith(self.text, position)
        if position + self.length > len(value):
            return False
        text, wild = self.text, self.wild
        return all(value[position + i] == text[i] for i in range(self.length) if i not in wild)

    def find(self, value: str, start: int, end: int) -> int:
        """The leftmost position in [start, end - length] where the piece matches, or -1."""
        if self.plain:
            return value.find(self.text, start, end)
        for position in range(start, end - self.length + 1):
            if self.at(value, position):
                return position
        return -1


def _pieces(parts: Parts, ignore_case: bool) -> list[_Piece]:
    pieces: list[list[str | None]] = [[]]
    for text, wildcards in parts:
        for char in text.lower() if ignore_case else text:
            if wildcards and char == "*":
                pieces.append([])
            elif wildcards and char == "?":
                pieces[-1].append(None)
            else:
                pieces[-1].append(char)
    return [_Piece(p) for p in pieces]


def compile_parts(parts: Parts, *, ignore_case: bool = False) -> Matcher:
    """A test of whole values against the pattern made of ``parts``."""
    pieces = _pieces(parts, ignore_case)
    matcher = _matcher(pieces)
    if ignore_case:
        return lambda value: matcher(value.lower())
    return matcher


def compile_wildcard(pattern: str, *, ignore_case: bool = False) -> Matcher:
    """A test of whole values against ``pattern``, where ``*`` and ``?`` are wildcards."""
    return compile_parts(((pattern, True),), ignore_case=ignore_case)


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _matcher(pieces: list[_Piece]) -> Matcher:
    if len(pieces) == 1:  # no star
        (only,) = pieces
        if only.plain:
            return only.text.__eq__
        return lambda value: len(value) == only.length and only.at(value, 0)
    first, *middle, last = pieces
    if not middle and first.plain and last.length == 0:  # "prefix*", and "*" itself
        prefix = first.text
        return lambda value: value.startswith(prefix)
    if not middle and first.length == 0 and last.plain:  # "*suffix"
        suffix = last.text
        return lambda value: value.endswith(suffix)

    def match(value: str) -> bool:
        end = len(value) - last.length  # where the last piece must start
        if end < first.length or not first.at(value, 0) or not last.at(value, end):
            return False
        position = first.length
        for piece in middle:
            found = piece.find(value, position, end)
            if found < 0:
                return False
            position = found + piece.length
        return True

    return match
