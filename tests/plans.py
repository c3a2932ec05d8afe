"""Test helper: check that a store query is answered by seeking the index meant for it.

A query carrying ``INDEXED BY`` cannot show that its index helps by the index being named in its
plan: SQLite uses the named index or refuses the query. So each query is looked at twice:

- as the store runs it: the index must be *searched* (a seek on its leading columns), not walked
  from end to end, no table may be scanned whole, and (``no_sort``) the ORDER BY / GROUP BY must
  come out of the index rather than a temporary B-tree. An index whose columns do not fit the
  query is still "used" under INDEXED BY, but fails here;
- with its INDEXED BY hints stripped, so SQLite's own planner (on ANALYZE statistics) chooses: it
  must choose the same index. The hints then only pin a choice the planner agrees with (they
  exist for the time before statistics, when it may pick another index on ``status``). Where the
  planner prefers another index even with statistics (``hint_needed``), the unhinted plan must at
  least scan no table and sort nothing.

Each check reports what is wrong (``plan_problems``) rather than raising, so tests can show that it
does report a dropped index.
"""

import re
import sqlite3

_HINT = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)


def strip_hints(sql):
    """`sql` without its INDEXED BY clauses."""
    return _HINT.sub("", sql)


def query_plan(db, sql):
    """The steps of EXPLAIN QUERY PLAN for `sql`, every parameter bound to 1."""
    return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, (1,) * sql.count("?"))]


def _names(step, index):
    return re.search(r"\bINDEX %s\b" % re.escape(index), step) is not None


def _problems_of(label, plan, index, *, no_sort, whole_index, must_use):
    problems = []
    uses = [step for step in plan if _names(step, index)]
    if must_use and not uses:
        problems.append("%s: %s is not used: %s" % (label, index, plan))
    if not whole_index:
        problems += ["%s: %s is walked whole, not searched: %r" % (label, index, step)
                     for step in uses if not step.startswith("SEARCH")]
    problems += ["%s: a table is scanned whole (%s is not enough): %r" % (label, index, step)
                 for step in plan if step.startswith("SCAN") and " INDEX " not in step]
    if no_sort:
        problems += ["%s: sorts in a temporary B-tree (%s gives no order): %r" % (label, index, step)
                     for step in plan if "TEMP B-TREE" in step]
    return problems


def plan_problems(db, sql, index, *, no_sort=False, whole_index=False, hint_needed=False):
    """What is wrong with how SQLite answers `sql` with `index`, as sentences ([] when nothing).

    whole_index: reading all of the index is the point (a count of every row by status), so a
    SCAN of it is fine. hint_needed: the planner, left alone, picks another index for this query
    (see the module docstring); its unhinted plan is then held only to no scan and no sort.
    """
    problems = []
    hinted = strip_hints(sql) != sql
    runs = [("as the store runs it", sql, True)] if hinted else []
    runs.append(("left to the planner", strip_hints(sql), not hint_needed))
    for label, text, must_use in runs:
        try:
            plan = query_plan(db, text)
        except sqlite3.OperationalError as exc:     # "no such index: ..." under INDEXED BY
            problems.append("%s: %s" % (label, exc))
            continue
        problems += _problems_of(label, plan, index, no_sort=no_sort, whole_index=whole_index,
                                 must_use=must_use)
    return problems


def assert_uses_index(db, sql, index, **options):
    """Fail, saying why, unless `sql` is answered by seeking `index` (see plan_problems)."""
    problems = plan_problems(db, sql, index, **options)
    assert not problems, "\n".join(problems)
