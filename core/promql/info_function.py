"""Prometheus 3's ``info(v, {data label selector})``: each series of ``v`` enriched with the data labels
of the info series (``target_info`` by default) that share its identifying labels ``instance`` and
``job``, as promql/info.go does it.

The selector argument may consist of matchers that all match the empty string (``{data=~".*"}``), which
``promql-parser`` refuses for a vector selector; :func:`rewrite` adds a marker matcher that matches
nothing empty (``__wk_info__="1"``) to it before parsing, and the evaluator drops it again. Pure: the
evaluator selects the series, this module decides which labels each result gets.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.extended_ranges import tokenize
from watchkeeper.core.promql.values import Matcher, VectorSample

NAME = "__name__"
TARGET_INFO = "target_info"
IDENTIFYING_LABELS = ("instance", "job")  # hard-coded in Prometheus too
MARKER = "__wk_info__"


class InfoError(CoreError):
    """info() that cannot combine its series: an info label with two values for one series."""


def rewrite(expr: str) -> str:
    """``expr`` with a marker matcher added to the label selector of every info() call."""
    toks = tokenize(expr)
    inserts: list[int] = []
    for k in range(len(toks) - 1):
        if toks[k][0] != "ident" or toks[k][1] != "info" or toks[k + 1][1] != "(":
            continue
        depth = 0
        for j in range(k + 1, len(toks)):
            text = toks[j][1]
            if text in ("(", "[", "{"):
                depth += 1
            elif text in (")", "]", "}"):
                depth -= 1
                if depth == 0:
                    break
            elif text == "," and depth == 1 and j + 1 < len(toks) and toks[j + 1][1] == "{":
                inserts.append(toks[j + 1][3])
                break
    for pos in sorted(inserts, reverse=True):
        expr = expr[:pos] + f'{MARKER}="1",' + expr[pos:]
    return expr


def effective_name_matchers(name_matchers: list[Matcher], dotall: bool) -> list[Matcher]:
    """The __name__ matchers that pick info series: as given when one is positive; only negative ones
    get `.+_info` before them; none means target_info."""
    if any(m.op in ("=", "=~") for m in name_matchers):
        return name_matchers
    if name_matchers:
        return [Matcher(NAME, "=~", ".+_info", dotall), *name_matchers]
    return [Matcher(NAME, "=", TARGET_INFO)]


def _signature(name: str, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return (("", name), *((k, labels[k]) for k in IDENTIFYING_LABELS if k in labels))


def enrich(base: list[VectorSample], infos: list[tuple[dict[str, str], float]], ignored: set[int],
           data_matchers: dict[str, list[Matcher]]) -> list[VectorSample]:
    """combineWithInfoVector at one time. ``infos``: each info series' labels and the time of its sample
    (the newest wins among series with the same identifying labels); ``ignored``: indexes of base
    series left as they are (info series themselves); ``data_matchers``: the selector's matchers by
    label name, without __name__ (only those labels are added; none given means all)."""
    newest: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], float]] = {}
    names = set()
    for labels, t in infos:
        name = labels.get(NAME, "")
        names.add(name)
        sig = _signature(name, labels)
        existing = newest.get(sig)
        if existing is not None and existing[1] == t:
            raise InfoError(f"found duplicate series for info metric: existing {existing[0]}, new {labels}")
        if existing is None or existing[1] < t:
            newest[sig] = (labels, t)
    all_match_empty = all(m.matches({}) for ms in data_matchers.values() for m in ms)
    out = []
    for i, sample in enumerate(base):
        if i in ignored:
            out.append(sample)
            continue
        added: dict[str, str] = {}
        seen = False
        for name in sorted(names):
            found = newest.get(_signature(name, sample.labels))
            if found is None:
                continue
            seen = True
            for label, value in found[0].items():
                if label == NAME or (data_matchers and label not in data_matchers):
                    continue
                if added.get(label, value) != value:
                    raise InfoError(f"conflicting label: {label}")
                if label not in sample.labels:
                    added[label] = value
        if not seen and not all_match_empty:
            continue  # a data label is required and no info series has it
        out.append(VectorSample({**sample.labels, **added}, sample.value))
    return out
