"""Go RE2 regular expressions (what Prometheus' `=~`, `!~` and label_replace use) translated to Python `re`.

Python's `re` reads many RE2 patterns differently or not at all: an inline flag such as `(?i)` is only
allowed at the very start, `\\d`/`\\w`/`\\s`/`\\b` are Unicode-aware, `$` also matches before a final
newline, `\\12` is a back-reference, `{,3}` is a repetition, and `[[:alpha:]]`, `\\z`, `\\Q...\\E`,
`\\x{263a}`, `\\pL` and `(?U)` do not exist. Rather than hoping the two agree, the pattern is parsed here
as Go's regexp/syntax parses it and re-emitted with every flag made explicit per atom: a literal under
`(?i)` becomes `(?i:x)`, `.` becomes `[^\\n]` or `(?s:.)`, `$` becomes `\\Z` or `(?m:$)`, a quantifier
under `(?U)` has its greediness swapped. Flags therefore scope exactly as in Go (to the end of the
enclosing group, across `|`), whatever Python allows.

What RE2 rejects (back-references, look-arounds, possessive and nested repetition, unknown escapes) is
rejected here too, with a message naming the construct, so a bad pattern fails when a rule file loads.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache, lru_cache

from watchkeeper.core.errors import CoreError


class RegexError(CoreError, ValueError):
    """A pattern that is not valid Go RE2, or uses RE2 syntax Watchkeeper cannot translate."""


_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
# RE2's Perl classes are ASCII-only (Python's are Unicode): \s is [\t\n\f\r ] (no \v).
_PERL = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}
_WORD = "[0-9A-Za-z_]"
_SIMPLE_ESCAPES = {"a": "\\x07", "f": "\\x0c", "t": "\\t", "n": "\\n", "r": "\\r", "v": "\\x0b"}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_MAX_REPEAT = 1000


@cache
def _unicode_class(name: str) -> str:
    """Character ranges of a Unicode general category (`L`, `Lu`, `Nd`...) as a class body."""
    if name == "Any":
        return "\\x00-\\U0010ffff"
    if not (1 <= len(name) <= 2 and name[0] in "CLMNPSZ"):
        raise RegexError(f"Unicode class \\p{{{name}}} is not supported (only general categories such as L, Lu, Nd)")
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat == name or (len(name) == 1 and cat[0] == name and cat != "Cn"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    if not ranges:
        raise RegexError(f"unknown Unicode class \\p{{{name}}}")
    return "".join(_cp(a) if a == b else f"{_cp(a)}-{_cp(b)}" for a, b in ranges)


def _cp(c: int) -> str:
    return f"\\U{c:08x}"


class _Translator:
    def __init__(self, pattern: str, dotall: bool) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        # flags in force: i (case), m (multi-line ^ $), s (dot matches \n), U (ungreedy)
        self.flags: set[str] = {"s"} if dotall else set()
        self.stack: list[set[str]] = []
        self.can_repeat = False  # whether the last thing emitted is an atom a quantifier may follow
        self.just_repeated = False
        self.names: set[str] = set()

    def error(self, message: str) -> RegexError:
        return RegexError(f"invalid RE2 regular expression {self.p!r}: {message}")

    def atom(self, text: str, case: bool = True) -> None:
        if case and "i" in self.flags:
            text = f"(?i:{text})"
        self.out.append(text)
        self.can_repeat, self.just_repeated = True, False

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            self.i += 1
            if c == "\\":
                self.escape()
            elif c == "[":
                self.char_class()
            elif c == "(":
                self.group()
            elif c == ")":
                if not self.stack:
                    raise self.error("unexpected )")
                self.flags = self.stack.pop()
                self.out.append(")")
                self.can_repeat, self.just_repeated = True, False
            elif c == "|":
                self.out.append("|")
                self.can_repeat = self.just_repeated = False
            elif c in "*+?":
                self.repeat(c)
            elif c == "{" and _REPEAT.match(p, self.i - 1):
                m = _REPEAT.match(p, self.i - 1)
                assert m is not None
                lo, hi = int(m.group(1)), m.group(3)
                if lo > _MAX_REPEAT or (hi and int(hi) > _MAX_REPEAT) or (hi and int(hi) < lo):
                    raise self.error(f"invalid repeat count {m.group(0)}")
                self.i = m.end()
                self.repeat(m.group(0))
            elif c == ".":
                self.atom("(?s:.)" if "s" in self.flags else "[^\\n]", case=False)
            elif c == "^":  # an empty-width assertion may be repeated in RE2 (x* of it is always true)
                self.atom("(?:(?m:^))" if "m" in self.flags else "(?:\\A)", case=False)
            elif c == "$":
                self.atom("(?:(?m:$))" if "m" in self.flags else "(?:\\Z)", case=False)
            else:
                self.atom(re.escape(c))
        if self.stack:
            raise self.error("missing )")
        return "".join(self.out)

    def repeat(self, op: str) -> None:
        if self.just_repeated:
            raise self.error(f"invalid nested repetition operator {op!r}")
        if not self.can_repeat:
            raise self.error(f"missing argument to repetition operator {op!r}")
        lazy = self.i < len(self.p) and self.p[self.i] == "?"
        if lazy:
            self.i += 1
        if "U" in self.flags:
            lazy = not lazy
        self.out.append(op + ("?" if lazy else ""))
        self.just_repeated = True

    def group(self) -> None:
        p = self.p
        self.stack.append(set(self.flags))
        if not p.startswith("?", self.i):
            self.out.append("(")
            self.can_repeat = self.just_repeated = False
            return
        self.i += 1
        for prefix in ("P<", "<"):
            if p.startswith(prefix, self.i):
                end = p.find(">", self.i)
                name = p[self.i + len(prefix):end] if end > 0 else ""
                if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    raise self.error(f"invalid named capture {name!r}")
                self.i = end + 1
                # Go allows a name twice ($name means the first); Python does not: later ones go unnamed
                self.out.append(f"(?P<{name}>" if name not in self.names else "(")
                self.names.add(name)
                self.can_repeat = self.just_repeated = False
                return
        m = re.compile(r"([imsU]*)(?:-([imsU]*))?([:)])").match(p, self.i)
        if m is None or (m.group(2) is not None and not m.group(2)):
            raise self.error(f"invalid or unsupported group syntax (?{p[self.i:self.i + 3]}...")
        self.i = m.end()
        self.flags |= set(m.group(1))
        self.flags -= set(m.group(2) or "")
        if m.group(3) == ")":
            # (?flags): in force to the end of the enclosing group, which this did not open
            self.stack.pop()
            return
        self.out.append("(?:")
        self.can_repeat = self.just_repeated = False

    def escape(self) -> None:
        p = self.p
        if self.i >= len(p):
            raise self.error("trailing backslash")
        c = p[self.i]
        self.i += 1
        if c == "Q":
            end = p.find("\\E", self.i)
            text = p[self.i:] if end < 0 else p[self.i:end]
            self.i = len(p) if end < 0 else end + 2
            for ch in text:
                self.atom(re.escape(ch))
            return
        if c in "AzbB":
            if c == "A":
                self.atom("(?:\\A)", case=False)
            elif c == "z":
                self.atom("(?:\\Z)", case=False)
            elif c == "b":
                self.atom(f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))", case=False)
            else:
                self.atom(f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))", case=False)
            return
        if c.lower() in _PERL:
            body = _PERL[c.lower()]
            self.atom(f"[{'^' if c.isupper() else ''}{body}]", case=False)
            return
        if c in "pP":  # under (?i) Go folds the class (so \p{Lu} also matches lower case), as Python does
            body = self.unicode_body()
            self.atom(f"[{'^' if c == 'P' else ''}{body}]")
            return
        if c == "C":
            self.atom("(?s:.)", case=False)
            return
        self.atom(self.char_escape(c))

    def unicode_body(self) -> str:
        p = self.p
        if p.startswith("{", self.i):
            end = p.find("}", self.i)
            if end < 0:
                raise self.error("missing } in \\p{...}")
            name = p[self.i + 1:end]
            self.i = end + 1
        else:
            name = p[self.i:self.i + 1]
            self.i += 1
        if name.startswith("^"):
            raise self.error(f"negated \\p{{{name}}} is not supported; use \\P{{{name[1:]}}}")
        try:
            return _unicode_class(name)
        except RegexError as exc:
            raise self.error(str(exc)) from None

    def char_escape(self, c: str) -> str:
        """One escaped character (outside or inside a class) as a Python escape."""
        p = self.p
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c == "x":
            if p.startswith("{", self.i):
                end = p.find("}", self.i)
                digits = p[self.i + 1:end] if end > 0 else ""
                self.i = end + 1
            else:
                digits = p[self.i:self.i + 2]
                self.i += 2
            if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", digits) or int(digits, 16) > sys.maxunicode:
                raise self.error(f"invalid escape \\x{digits}")
            return _cp(int(digits, 16))
        if c in "01234567":
            m = re.compile(r"[0-7]{0,2}").match(p, self.i)
            assert m is not None
            if c != "0" and not m.group(0):
                raise self.error(f"back-references such as \\{c} are not supported by RE2")
            self.i = m.end()
            return _cp(int(c + m.group(0), 8))
        if c.isalnum() or c == "_":
            raise self.error(f"invalid escape \\{c}")
        return re.escape(c)

    def char_class(self) -> None:
        p = self.p
        negate = p.startswith("^", self.i)
        if negate:
            self.i += 1
        parts: list[str] = []
        self._class_parts = parts
        first = True
        while True:
            if self.i >= len(p):
                raise self.error("missing ]")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and p.startswith("[:", self.i):
                end = p.find(":]", self.i + 2)
                name = p[self.i + 2:end] if end > 0 else ""
                neg = name.startswith("^")
                body = _POSIX.get(name.lstrip("^"))
                if body is None:
                    raise self.error(f"invalid character class range [:{name}:]")
                self.i = end + 2
                if neg:
                    if parts or negate or not p.startswith("]", self.i):
                        raise self.error(f"[[:{name}:]] combined with other items is not supported")
                    negate = True
                    parts.append(body)
                    continue
                parts.append(body)
                continue
            lo = self.class_char()
            if lo is None:
                continue  # a class escape already appended to parts
            if p.startswith("-", self.i) and not p.startswith("-]", self.i):
                self.i += 1
                hi = self.class_char()
                if hi is None:
                    raise self.error("invalid character class range")
                if ord(_unescape_one(hi)) < ord(_unescape_one(lo)):
                    raise self.error("invalid character class range")
                parts.append(f"{lo}-{hi}")
            else:
                parts.append(lo)
        body = "".join(parts)
        if "i" in self.flags:
            self.atom(f"(?i:[{'^' if negate else ''}{body}])", case=False)
        else:
            self.atom(f"[{'^' if negate else ''}{body}]", case=False)

    def class_char(self) -> str | None:
        """One character of a class as a Python class-safe escape, or None after appending a class escape."""
        p = self.p
        c = p[self.i]
        self.i += 1
        if c != "\\":
            return _cp(ord(c)) if c in "[]\\^-&~|" else c
        if self.i >= len(p):
            raise self.error("trailing backslash")
        e = p[self.i]
        self.i += 1
        if e in _PERL:
            self._class_parts.append(_PERL[e])
            return None
        if e == "p":
            self._class_parts.append(self.unicode_body())
            return None
        if e.lower() in _PERL or e == "P":
            raise self.error(f"negated class \\{e} inside [...] is not supported")
        return self.char_escape(e)

    _class_parts: list[str]


def _unescape_one(text: str) -> str:
    if text.startswith("\\U"):
        return chr(int(text[2:], 16))
    if text.startswith("\\x"):
        return chr(int(text[2:], 16))
    if text.startswith("\\"):
        return {"\\t": "\t", "\\n": "\n", "\\r": "\r"}.get(text, text[1:])
    return text


@lru_cache(maxsize=4096)
def translate(pattern: str, dotall: bool = False) -> str:
    """The Python `re` equivalent of a Go RE2 pattern (unanchored; anchor with fullmatch).

    ``dotall`` starts with the `s` flag set: Prometheus 3 matches `.` against newlines in label
    matchers, Prometheus 2 does not.
    """
    return _Translator(pattern, dotall).run()


@lru_cache(maxsize=4096)
def compile_re2(pattern: str, dotall: bool = False) -> re.Pattern[str]:
    """Compile a Go RE2 pattern for Python; RegexError names what is invalid or untranslatable."""
    translated = translate(pattern, dotall)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise RegexError(f"invalid RE2 regular expression {pattern!r}: {exc}") from None


def go_expand(template: str, m: re.Match[str]) -> str:
    """Go's Regexp.ExpandString: `$1`, `${1}`, `$name`, `${name}`, `$$`; `$1x` names group `1x` (empty)."""
    out: list[str] = []
    i = 0
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        rest = template[j + 1:]
        if rest.startswith("$"):
            out.append("$")
            i = j + 2
            continue
        found = re.match(r"\{(\w+)\}|(\w+)", rest)
        if found is None or (found.group(0).startswith("{") and found.group(1) is None):
            out.append("$")
            i = j + 1
            continue
        name = found.group(1) or found.group(2)
        i = j + 1 + found.end()
        if name.isdigit() and (name == "0" or not name.startswith("0")) and len(name) <= 8:
            num = int(name)
            if num <= m.re.groups:
                out.append(m.group(num) or "")
        elif name in m.re.groupindex:
            out.append(m.group(name) or "")


def portable(pattern: str) -> str:
    """The same RE2 matcher pattern without the syntax promql-parser's regex check (Rust's regex crate)
    lacks: `\\Q...\\E` quoting, octal escapes and a `{` that starts no repetition (`x{,2}`) are spelled
    out, and group names (which a matcher never uses, and which Go lets repeat) are dropped, so an
    expression Go accepts parses; the translation then sees an equivalent pattern."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = class_start = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            class_start = False
            e = pattern[i + 1]
            if e == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                text = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append("".join(f"\\x{{{ord(ch):x}}}" if not ch.isalnum() else ch for ch in text))
                i = n if end < 0 else end + 2
                continue
            octal = re.compile(r"[0-7]{1,3}").match(pattern, i + 1)
            if octal and (e == "0" or len(octal.group(0)) > 1):
                out.append(f"\\x{{{int(octal.group(0), 8):x}}}")
                i = octal.end()
                continue
            width = 2
            if e in "xpP" and pattern.startswith("{", i + 2):
                width = pattern.find("}", i) - i + 1 if "}" in pattern[i:] else 2
            out.append(pattern[i:i + width])
            i += width
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end > 0:
                    out.append(pattern[i:end + 2])
                    i = end + 2
                    class_start = False
                    continue
            if c == "]" and not class_start:
                in_class = False
            class_start = False
        elif c == "[":
            in_class = class_start = True  # a "]" right after "[" or "[^" is a literal
            out.append(c)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            continue
        elif c == "{" and not _REPEAT.match(pattern, i):
            out.append("\\{")
            i += 1
            continue
        elif c == "(" and (named := re.compile(r"\(\?P?<[A-Za-z0-9_]+>").match(pattern, i)):
            out.append("(")
            i = named.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)
