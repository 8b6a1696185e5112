"""Go RE2 patterns as Prometheus reads them, translated to Python's re: given a pattern and strings,
expect RE2's answer (anchored at both ends, as label matchers are)."""

from __future__ import annotations

import pytest

from watchkeeper.core.promql.evaluator import PromQLError, evaluate, parse
from watchkeeper.core.promql.re2 import RegexError, compile_re2
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.values import Matcher


@pytest.mark.parametrize(("pattern", "matching", "not_matching"), [
    ("((?i)PRO).*", ["PROD", "production", "Pro"], ["xPRO", "staging"]),  # the flag mid-pattern (re.error before)
    ("a(?i)b|c", ["aB", "ab", "C"], ["Ab", "AB"]),  # a flag holds to the end of its group, across |
    ("(?i:a)b", ["Ab", "ab"], ["AB"]),
    ("x(?i)y(?-i)z", ["xYz", "xyz"], ["xYZ"]),
    ("[[:alpha:]]+", ["abc", "XyZ"], ["ab1", ""]),
    ("[[:^digit:]]+", ["ab"], ["a1"]),
    ("[[:digit:][:upper:]]+", ["A1B2"], ["a1"]),
    (r"\d+", ["0123"], ["١٢٣", "12a"]),  # RE2's \d is ASCII only
    (r"\w+", ["a_1"], ["é"]),
    (r"\s", [" ", "\t"], ["\v"]),  # RE2's \s has no \v
    ("a$", ["a"], ["a\n"]),  # Python's $ also matches before a final newline; RE2's does not
    (r"a\z", ["a"], ["a\n"]),
    ("a.b", ["axb"], ["a\nb"]),  # Prometheus 2: . does not match a newline
    ("(?s)a.b", ["a\nb"], []),
    (r"\Qa.b*\E", ["a.b*"], ["axbb"]),
    ("x{,2}", ["x{,2}"], ["xx"]),  # RE2 reads {,n} literally, Python as a repetition
    (r"\x{41}\101\x42", ["AAB"], []),  # hex and octal escapes (\101 is not a back-reference)
    ("(?U)a+", ["aaa"], []),
    (r"\pL+", ["héllo", "Ωmega"], ["h1"]),
    (r"\p{Lu}\PL", ["A1"], ["a1", "AB"]),
    (r"(?i)\p{Lu}", ["A", "a"], ["1"]),  # Go folds a Unicode class under (?i)
    (r"\B*a\z?", ["a"], []),  # RE2 lets an empty-width assertion repeat
    (r"a\b", ["a"], []),
    ("(?P<x>a)(?<y>b)", ["ab"], []),
    ("[]a]", ["]", "a"], ["b"]),
    ("[a-c&&~]", ["b", "&", "~"], ["d"]),  # no Python set-operation warnings or meaning inside classes
    ("", [""], ["a"]),
])  # fmt: skip
def test_re2_patterns_match_as_in_go(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    regex = compile_re2(pattern)
    for text in matching:
        assert regex.fullmatch(text), (pattern, text)
    for text in not_matching:
        assert not regex.fullmatch(text), (pattern, text)


def test_dot_matches_newline_in_prometheus3_mode() -> None:
    assert Matcher("a", "=~", "x.*", dotall=True).matches({"a": "x\ny"})
    assert not Matcher("a", "=~", "x.*").matches({"a": "x\ny"})


@pytest.mark.parametrize(("pattern", "why"), [
    ("a**", "nested repetition"), (r"\1", "back-reference"), ("(?=a)", "group syntax"), ("a{1001}", "repeat count"),
    ("[z-a]", "range"), (r"\p{Greek}", "not supported"), ("(", "missing \\)"), (")", "unexpected"), (r"\q", "escape"),
    ("*", "missing argument"),
])  # fmt: skip
def test_what_re2_refuses_is_refused_with_a_reason(pattern: str, why: str) -> None:
    with pytest.raises(RegexError, match=why):
        compile_re2(pattern)


def test_a_bad_regex_fails_when_the_expression_is_parsed() -> None:
    with pytest.raises(PromQLError, match="back-reference"):
        parse(r'label_replace(x, "a", "$1", "b", "(a)\\1")')
    with pytest.raises(PromQLError, match="nested repetition"):
        parse('x{a=~"b**"}')


def test_matcher_syntax_the_parser_lacks_is_rewritten_not_refused() -> None:
    """promql-parser checks matcher regexes with Rust's regex crate, which lacks \\Q...\\E, octal escapes,
    a literal `x{,2}` and repeated group names; Go accepts them, so Watchkeeper does too."""
    store = SeriesStore()
    for value in ("a.b", "AA", "x{,2}", "aa"):
        store.append_one("x", {"l": value}, 0.0, 1.0)
    for pattern, selected in ((r"\\Qa.b\\E", ["a.b"]), (r"\\101{2}", ["AA"]), ("x{,2}", ["x{,2}"]),
                              ("(?P<n>a)(?P<n>a)", ["aa"])):
        result = evaluate(f'x{{l=~"{pattern}"}}', 0.0, store)
        assert [s.labels["l"] for s in result] == selected, pattern  # type: ignore[union-attr]


def test_the_issue_19_selector_evaluates() -> None:
    store = SeriesStore()
    for group in ("PROD-eu", "production", "staging"):
        store.append_one("x", {"group": group}, 0.0, 1.0)
    result = evaluate('x{group=~"((?i)PRO).*"}', 0.0, store)
    assert sorted(s.labels["group"] for s in result) == ["PROD-eu", "production"]  # type: ignore[union-attr]
