"""What the embedded ClickHouse HTTP endpoint lets a query do, decided on ClickHouse's own parse of it.

The endpoint promises what a ClickHouse server's `readonly` user in a `user_files_path` sandbox gets, or
less. chDB's `readonly=1` session setting gives part of it (no INSERT, DDL, SET or SETTINGS, and only the
table functions ClickHouse marks safe for readonly), but not all: in chDB the scalar `file()` reads any
file, `INTO OUTFILE` writes any file (both are sandboxed only by a server's `user_files_path`), and one
request may carry several statements. So every query is first parsed by ClickHouse itself:

1. `formatQuerySingleLine(<query as a bound parameter>)` parses it without running it, refuses more than
   one statement, and gives the canonical text that is then explained and run (so what was checked is
   exactly what runs);
2. `EXPLAIN AST <canonical text>` gives the syntax tree, one node a line, which `check_ast` walks here.

The tree dump prints identifiers and aliases raw, so a backquoted name holding a newline can add lines to
it, but never remove or re-indent a real node's line: every check below is one that extra lines can only
make stricter (a node type at the start of a line, a function name as the first word after `Function`,
a `Literal` directly under the root), never one that an added line could satisfy in place of a real one.
"""

from __future__ import annotations

from collections.abc import Iterable

# Statements a read-only user may run (the first line of the dump: the root node's type). `Explain` is
# allowed only around a SELECT (checked below); `ShowTables` is also SHOW DATABASES/SETTINGS/CLUSTERS/...
READ_STATEMENTS = frozenset({
    "SelectWithUnionQuery", "ShowTables", "ShowColumns", "ShowIndexes", "ShowCreateTableQuery",
    "ShowCreateDatabaseQuery", "ShowCreateViewQuery", "ShowCreateDictionaryQuery", "ShowProcesslistQuery",
    "ShowFunctions", "ShowEngineQuery", "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery",
    "ExistsViewQuery", "ExistsDictionaryQuery", "Explain",
})

# Table functions that only compute from their arguments or read this server's own tables. Every other
# table function ClickHouse knows (`system.table_functions`, read at start, so one added by a later chDB
# is refused too) is refused: file, url, s3, hdfs, remote, cluster, mysql, postgresql, executable,
# python, input, dictionary, iceberg, ... `format` parses only its literal argument (and is also an
# ordinary string function); readonly=1 still refuses the ones ClickHouse does not mark readonly-safe.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generaterandom", "generate_series",
    "generateseries", "primes", "merge", "null", "format",
})

# Ordinary functions that reach outside the query: files, dictionaries (whose sources may be files,
# processes or other servers), Join tables, model files run through the library bridge, Keeper, the
# server's certificate and configuration, and the introspection functions. Names are compared lower-case,
# and every `dict*` function is refused (see `is_denied`).
DENIED_FUNCTIONS = frozenset({
    "file", "joinget", "joingetornull", "catboostevaluate", "naivebayesclassifier", "generateserialid",
    "showcertificate", "getmacro", "getserversetting", "getclienthttpheader", "addresstoline",
    "addresstolinewithinlines", "addresstosymbol", "demangle",
})


class QueryRefused(Exception):
    """The query is not a single read the endpoint allows; the message says what to change."""


def denied_function_names(table_functions: Iterable[str], aliases: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The lower-case function names to refuse, from ClickHouse's own lists.

    `table_functions` are `system.table_functions` names, `aliases` are `system.functions` (name,
    alias_to) pairs, so an alias of a refused function is refused as well.
    """
    denied = {n.lower() for n in table_functions} - ALLOWED_TABLE_FUNCTIONS
    denied |= DENIED_FUNCTIONS
    denied |= {name.lower() for name, target in aliases if _is_denied(target.lower(), denied)}
    return frozenset(denied)


def _is_denied(name: str, denied: frozenset[str] | set[str]) -> bool:
    return name in denied or name.startswith("dict")


def check_ast(dump: str, denied: frozenset[str]) -> None:
    """Raise QueryRefused unless the `EXPLAIN AST` dump is one read statement with nothing reaching out.

    `dump` is the EXPLAIN AST text of the canonical query, which the endpoint runs with a trailing
    `FORMAT`, so the root's output clause holds that format's identifier.
    """
    lines = [line for line in dump.split("\n") if line.strip()]
    if not lines:
        raise QueryRefused("the query is empty")
    root = lines[0].split(" ", 1)[0]
    if root not in READ_STATEMENTS:
        raise QueryRefused(
            f"only SELECT, WITH ... SELECT, SHOW, DESCRIBE, EXISTS and EXPLAIN of a SELECT are allowed "
            f"(this is a {root})"
        )
    if root == "Explain" and (len(lines) < 2 or _node(lines[1]) != (1, "SelectWithUnionQuery")):
        raise QueryRefused("EXPLAIN is allowed only of a SELECT, without EXPLAIN settings")
    for line in lines:
        depth, kind = _node(line)
        if kind == "Set":
            raise QueryRefused("settings can't be changed from a request (no SETTINGS clause, no SET)")
        if kind == "Literal" and (depth == 1 or (root == "Explain" and depth == 2)):
            # The only literal children of an output clause are INTO OUTFILE's file and COMPRESSION.
            raise QueryRefused("INTO OUTFILE is not allowed: the result comes back in the HTTP response")
        if kind == "Function":
            name = line.strip().split(" ", 2)[1].lower() if " " in line.strip() else ""
            if _is_denied(name, denied):
                raise QueryRefused(
                    f"function {name}() is not allowed: it reaches files, the network, processes, "
                    "dictionaries or other databases"
                )


def _node(line: str) -> tuple[int, str]:
    """(depth, node type) of one dump line: one leading space per level, the type up to the first space."""
    stripped = line.lstrip(" ")
    return len(line) - len(stripped), stripped.split(" ", 1)[0]
