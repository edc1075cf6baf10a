"""Policy variables: ``${aws:username}`` in a Resource or a condition value.

A value of a ``2012-10-17`` policy is read once into a template: pattern text, literal text
(``${*}``, ``${?}`` and ``${$}`` stand for those characters, matched as they are) and
variables, each a context key with an optional default (``${aws:userid, 'anonymous'}``).
Each request fills the variables in from its context; the value of a variable is literal
text too, so a ``*`` in a tag value is no wildcard. A variable that the request cannot fill
and that has no default makes the statement not apply (AWS: "If AWS cannot resolve a
variable, this might cause the entire statement to be invalid"): `Unresolved` is raised and
the evaluator skips the statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .wildcard import Matcher, Parts, compile_parts

SPECIAL = {"*": "*", "?": "?", "$": "$"}


class Unresolved(Exception):
    """A variable had no value in the request and no default."""


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Variable:
    key: str  # the context key, lower case (keys are case-insensitive)
    default: str | None = None


# Pattern text (a plain str), literal text or a variable.
Token = str | Literal | Variable
Lookup = Callable[[str], str | None]  # a context key (lower case) to its single value


def parse_template(text: str, variables: bool = True) -> tuple[Token, ...]:
    """The tokens of ``text``; without ``variables`` (a 2008-10-17 policy) all of it is
    pattern text, ``${...}`` included."""
    if not variables or "${" not in text:
        return (text,)
    tokens: list[Token] = []
    position = 0
    while (start := text.find("${", position)) >= 0:
        end = text.find("}", start + 2)
        if end < 0:
            break
        token = _variable(text[start + 2 : end])
        if token is None:  # not a variable: keep the text, look for the next one
            tokens.append(text[position : start + 2])
            position = start + 2
            continue
        if start > position:
            tokens.append(text[position:start])
        tokens.append(token)
        position = end + 1
    if position < len(text):
        tokens.append(text[position:])
    return tuple(_joined(tokens))


def _variable(inside: str) -> Literal | Variable | None:
    if inside in SPECIAL:
        return Literal(SPECIAL[inside])
    name, comma, default = inside.partition(",")
    name = name.strip()
    if not name or any(c.isspace() for c in name) or "$" in name or "{" in name:
        return None
    if not comma:
        return Variable(name.lower())
    default = default.strip()
    if len(default) < 2 or default[0] != "'" or default[-1] != "'":
        return None
    return Variable(name.lower(), default[1:-1])


def _joined(tokens: list[Token]) -> Iterator[Token]:
    """Adjacent pattern texts as one."""
    pending = ""
    for token in tokens:
        if isinstance(token, str):
            pending += token
            continue
        if pending:
            yield pending
            pending = ""
        yield token
    if pending:
        yield pending


def is_static(tokens: tuple[Token, ...]) -> bool:
    return not any(isinstance(t, Variable) for t in tokens)


def resolve(tokens: tuple[Token, ...], lookup: Lookup) -> Parts:
    """The pattern parts of ``tokens`` with every variable filled in from ``lookup``."""
    parts: list[tuple[str, bool]] = []
    for token in tokens:
        if isinstance(token, str):
            parts.append((token, True))
        elif isinstance(token, Literal):
            parts.append((token.text, False))
        else:
            value = lookup(token.key)
            if value is None:
                value = token.default
            if value is None:
                raise Unresolved(token.key)
            parts.append((value, False))
    return parts


def text_of(parts: Parts) -> str:
    """The text that ``parts`` stand for, wildcards as plain characters (for exact
    comparisons, which have no wildcards)."""
    return "".join(text for text, _ in parts)


class TemplateMatcher:
    """A pattern that may hold variables: compiled once when it has none, else for each
    request (the last few fillings are kept, as most requests repeat the same user)."""

    __slots__ = ("_cache", "_compile", "static", "tokens")

    def __init__(self, tokens: tuple[Token, ...], compile: Callable[[Parts], Matcher]) -> None:
        self.tokens = tokens
        self._compile = compile
        self.static = compile(resolve(tokens, _no_lookup)) if is_static(tokens) else None
        self._cache: dict[tuple[tuple[str, bool], ...], Matcher] = {}

    def matcher(self, lookup: Lookup) -> Matcher:
        if self.static is not None:
            return self.static
        parts = tuple(resolve(self.tokens, lookup))
        found = self._cache.get(parts)
        if found is None:
            if len(self._cache) >= 64:
                self._cache.clear()
            found = self._cache[parts] = self._compile(parts)
        return found


def _no_lookup(key: str) -> str | None:
    return None


def wildcard_matcher(tokens: tuple[Token, ...], *, ignore_case: bool = False) -> TemplateMatcher:
    return TemplateMatcher(tokens, lambda parts: compile_parts(parts, ignore_case=ignore_case))
