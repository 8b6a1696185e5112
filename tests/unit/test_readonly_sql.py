"""The read-only policy on `EXPLAIN AST` dumps as chDB 4.4 (ClickHouse 26.9) prints them.

Each dump below is chDB's own output for the query in its comment (with the endpoint's trailing
`FORMAT TabSeparated`); the real engine runs the same queries in tests/security.
"""

from __future__ import annotations

import pytest

from watchkeeper.sinks.readonly_sql import QueryRefused, check_ast, denied_function_names

DENIED = denied_function_names(["file", "url", "numbers", "remote", "format", "executable", "python"],
                               [("FILE_ALIAS", "file"), ("lower_alias", "lower")])

# SELECT count() FROM numbers(10) WHERE 1 IN (SELECT 1)
PLAIN_SELECT = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 3)
   ExpressionList (children 1)
    Function count (children 1)
     ExpressionList
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function numbers (children 1)
       ExpressionList (children 1)
        Literal UInt64_10
   Function in (children 1)
    ExpressionList (children 2)
     Literal UInt64_1
     Subquery (children 1)
      SelectWithUnionQuery (children 1)
       ExpressionList (children 1)
        SelectQuery (children 1)
         ExpressionList (children 1)
          Literal UInt64_1
 Identifier TabSeparated
"""

# SELECT 'x' INTO OUTFILE '/tmp/x' APPEND COMPRESSION 'gzip'
OUTFILE = """SelectWithUnionQuery (children 4)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Literal \\'x\\'
 Literal \\'/tmp/x\\'
 Literal \\'gzip\\'
 Identifier TabSeparated
"""

# EXPLAIN SELECT 1 INTO OUTFILE '/tmp/x'
EXPLAIN_OUTFILE = """Explain EXPLAIN (children 3)
 SelectWithUnionQuery (children 1)
  ExpressionList (children 1)
   SelectQuery (children 1)
    ExpressionList (children 1)
     Literal UInt64_1
 Literal \\'/tmp/x\\'
 Identifier TabSeparated
"""

# SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)
NESTED_SETTINGS = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Subquery (children 1)
       SelectWithUnionQuery (children 1)
        ExpressionList (children 1)
         SelectQuery (children 2)
          ExpressionList (children 1)
           Literal UInt64_1
          Set
 Identifier TabSeparated
"""

# SELECT 1 AS `a\nFunction numbers`, `x\ny`(1): a raw newline in a name adds a line, never hides one.
INJECTED = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 2)
    Literal UInt64_1 (alias a
Function numbers)
    Function x
y (children 1)
     ExpressionList (children 1)
      Literal UInt64_1
 Identifier TabSeparated
"""


def test_a_plain_select_with_allowed_table_function_and_subquery_passes() -> None:
    check_ast(PLAIN_SELECT, DENIED)
    check_ast("ShowTables (children 1)\n Identifier TabSeparated\n", DENIED)
    check_ast(INJECTED, DENIED)


@pytest.mark.parametrize(("dump", "reason"), [
    (PLAIN_SELECT.replace("Function numbers", "Function file"), "function file()"),
    (PLAIN_SELECT.replace("Function count", "Function FILE_ALIAS"), "function file_alias()"),
    (PLAIN_SELECT.replace("Function numbers", "Function Remote"), "function remote()"),
    (PLAIN_SELECT.replace("Function count", "Function dictGetString"), "function dictgetstring()"),
    (PLAIN_SELECT.replace("Function numbers", "Function python"), "function python()"),
    (OUTFILE, "INTO OUTFILE"),
    (EXPLAIN_OUTFILE, "INTO OUTFILE"),
    (NESTED_SETTINGS, "settings can't be changed"),
    ("Set\n", "only SELECT"),
    ("InsertQuery (children 1)\n Identifier t\n", "only SELECT"),
    ("Explain EXPLAIN (children 2)\n Set\n SelectWithUnionQuery (children 1)\n", "EXPLAIN is allowed only"),
    ("ParallelWithQuery (children 2)\n", "only SELECT"),
    ("", "empty"),
    (INJECTED.replace("Function numbers)", "Function file x)"), "function file()"),  # a fake line: stricter
])
def test_refused(dump: str, reason: str) -> None:
    with pytest.raises(QueryRefused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_ast(dump, DENIED)


def test_denied_names_are_every_table_function_but_the_allowed_ones_plus_file_and_aliases() -> None:
    assert {"file", "url", "remote", "executable", "python", "file_alias"} <= DENIED
    assert not {"numbers", "format", "lower", "lower_alias"} & DENIED
