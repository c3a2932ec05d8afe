"""Test helper: check that a store query is answered through an index, not a table scan."""


def assert_uses_index(db, sql, index, *, no_sort=False):
    """EXPLAIN QUERY PLAN of `sql` (every parameter bound to 1) names `index`, scans no table
    without an index and, with no_sort, needs no temporary B-tree to sort."""
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, (1,) * sql.count("?"))]
    assert any(index in step for step in plan), plan
    assert not any(step.startswith("SCAN") and "INDEX" not in step for step in plan), plan
    if no_sort:
        assert not any("TEMP B-TREE" in step for step in plan), plan
