"""OVER aggregates (SQL ``agg(x) OVER (PARTITION BY .. ORDER BY t ROWS|RANGE .. PRECEDING)`` and
the Table API's ``over_window(Over...)``) against a plain Python computation of each frame, in
batch mode and in streaming mode with event time; late rows are dropped and counted."""

from __future__ import annotations

import datetime
import os
import random

import pytest

from conftest import make_env, value
from weir.table.expressions import CURRENT_ROW, UNBOUNDED_RANGE, col, lit, row_interval
from weir.table.window import Over

SEED = int(os.environ.get("WEIR_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))
EPOCH = datetime.datetime(1970, 1, 1)


def oracle(rows, rows_frame, preceding):
    """(k, t, v) -> {(k, t, v, idx): (count, sum, min, max)} computed frame by frame."""
    out = {}
    for i, (k, t, v) in enumerate(rows):
        part = [(j, r) for j, r in enumerate(rows) if r[0] == k]
        if rows_frame:
            # Rows in time order (times are distinct within a partition here).
            ordered = sorted(part, key=lambda jr: jr[1][1])
            pos = [j for j, _ in ordered].index(i)
            lo = 0 if preceding is None else max(0, pos - preceding)
            frame = [r for _, r in ordered[lo : pos + 1]]
        else:
            frame = [r for _, r in part if r[1] <= t and (preceding is None or r[1] >= t - preceding)]
        vals = [r[2] for r in frame]
        out[i] = (len(vals), sum(vals), min(vals), max(vals))
    return out


@pytest.mark.parametrize("frame", ["ROWS 2", "ROWS UNBOUNDED", "RANGE 3000", "RANGE UNBOUNDED"])
def test_sql_over_aggregates_match_each_rows_frame(frame):
    rng = random.Random(SEED + sum(map(ord, frame)))
    print(f"seed {SEED} (WEIR_FAULT_SEED)")
    rows_frame = frame.startswith("ROWS")
    n = 300
    if rows_frame:
        times = rng.sample(range(0, 200_000, 100), n)  # distinct: ROWS order is well defined
    else:
        times = [rng.randrange(0, 60) * 1000 for _ in range(n)]  # many peers of one time
    rows = [(rng.randrange(4), times[i], rng.randrange(-50, 100)) for i in range(n)]
    env = make_env(streaming=False)
    env.create_temporary_view(
        "r", env.from_elements([(k, EPOCH + datetime.timedelta(milliseconds=t), v, i) for i, (k, t, v) in enumerate(rows)], ["k", "ts", "v", "i"])
    )
    kind, amount = frame.split()
    bound = "UNBOUNDED" if amount == "UNBOUNDED" else (amount if rows_frame else f"INTERVAL '{int(amount) // 1000}' SECOND")
    w = f"(PARTITION BY k ORDER BY ts {kind} BETWEEN {bound} PRECEDING AND CURRENT ROW)"
    sql = f"SELECT i, COUNT(*) OVER {w}, SUM(v) OVER {w}, MIN(v) OVER {w}, MAX(v) OVER {w} FROM r"
    got = {r[0]: tuple(r[1:]) for r in env.sql_query(sql).execute().collect()}
    preceding = None if amount == "UNBOUNDED" else int(amount)
    assert got == oracle(rows, rows_frame, preceding)
    if rows_frame:
        # LAG: the value two rows before in time order within the key, else -1.
        lag = f"SELECT i, LAG(v, 2, -1) OVER (PARTITION BY k ORDER BY ts) FROM r"
        got = {r[0]: r[1] for r in env.sql_query(lag).execute().collect()}
        expected = {}
        for k in range(4):
            part = sorted((t, i, v) for i, (kk, t, v) in enumerate(rows) if kk == k)
            for pos, (_, i, _) in enumerate(part):
                expected[i] = part[pos - 2][2] if pos >= 2 else -1
        assert got == expected


def test_event_time_over_windows_fire_with_the_watermark_and_drop_late_rows():
    job = "over-late"
    env = make_env(pipeline__name=job)
    n = 5000
    # Times jump about within a few seconds of the sequence; a watermark 2 s behind the
    # largest time seen keeps nothing late, one at the time itself drops rows.
    expr = "TO_TIMESTAMP_LTZ((x + MOD(x * 7919, 5) * 1000) * 10, 3)"
    env.execute_sql(
        f"""CREATE TABLE patient (x BIGINT, ts AS {expr}, WATERMARK FOR ts AS ts - INTERVAL '60' SECOND)
            WITH ('connector' = 'datagen', 'number-of-rows' = '{n}', 'fields.x.kind' = 'sequence',
                  'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    env.execute_sql(
        f"""CREATE TABLE eager (x BIGINT, ts AS {expr}, WATERMARK FOR ts AS ts)
            WITH ('connector' = 'datagen', 'number-of-rows' = '{n}', 'rows-per-second' = '20000',
                  'fields.x.kind' = 'sequence', 'fields.x.start' = '1', 'fields.x.end' = '{n}')"""
    )
    w = "(PARTITION BY MOD(x, 3) ORDER BY ts RANGE BETWEEN INTERVAL '30' SECOND PRECEDING AND CURRENT ROW)"
    got = {r[0]: r[1] for r in env.sql_query(f"SELECT x, COUNT(*) OVER {w} FROM patient").execute().collect()}
    t = {x: (x + (x * 7919) % 5 * 1000) * 10 for x in range(1, n + 1)}
    expected = {x: sum(1 for y in t if y % 3 == x % 3 and t[x] - 30_000 <= t[y] <= t[x]) for x in t}
    assert got == expected
    eager = [r[0] for r in env.sql_query(f"SELECT x, COUNT(*) OVER {w} FROM eager").execute().collect()]
    dropped = value(env.metrics_text(), "weir_operator_late_records_dropped_total", job_name=job)
    assert dropped and dropped > 0 and len(eager) + dropped == n, (len(eager), dropped)


def test_the_table_api_over_window():
    env = make_env(streaming=False)
    data = [(1000, "Alice", 110.1), (4000, "Bob", 30.2), (3000, "Alice", 20.0), (2000, "Bob", 53.1),
            (5000, "Alice", 13.1), (3000, "Bob", 3.1), (7000, "Bob", 16.1), (10000, "Alice", 20.1)]
    t = env.from_elements([(EPOCH + datetime.timedelta(milliseconds=ms), n, p) for ms, n, p in data], ["ts", "name", "price"])
    # PyFlink's over_window example: the max of the row and the two before it, per name.
    top = t.over_window(
        Over.partition_by(col("name")).order_by(col("ts")).preceding(row_interval(2)).following(CURRENT_ROW).alias("w")
    ).select(col("name"), col("ts"), col("price").max.over(col("w")).alias("top"))
    got = sorted((r.name, r.ts.second, r.top) for r in top.execute().collect())
    assert got == [("Alice", 1, 110.1), ("Alice", 3, 110.1), ("Alice", 5, 110.1), ("Alice", 10, 20.1),
                   ("Bob", 2, 53.1), ("Bob", 3, 53.1), ("Bob", 4, 53.1), ("Bob", 7, 30.2)]
    # A time range, and the whole past (the default), with unnamed columns named _c<position>.
    ranged = t.over_window(Over.partition_by(col("name")).order_by(col("ts")).preceding(lit(2).seconds).alias("w")).select(
        col("name"), col("ts"), col("price").count.over(col("w"))
    )
    assert ranged.get_schema().get_field_names() == ["name", "ts", "_c2"]
    assert sorted((r[0], r[1].second, r[2]) for r in ranged.execute().collect())[:3] == [("Alice", 1, 1), ("Alice", 3, 2), ("Alice", 5, 2)]
    everything = t.over_window(Over.order_by(col("ts")).preceding(UNBOUNDED_RANGE).alias("w")).select(col("ts"), col("price").count.over(col("w")))
    assert sorted((r[0].second, r[1]) for r in everything.execute().collect())[-1] == (10, 8)
    with pytest.raises(ValueError, match="ends at CURRENT_ROW"):
        t.over_window(Over.order_by(col("ts")).following(row_interval(1)).alias("w")).select(col("price").sum.over(col("w")))
    with pytest.raises(Exception, match="at least one aggregate"):
        t.over_window(Over.order_by(col("ts")).alias("w")).select(col("price"))


def test_over_misuse_is_a_clear_error():
    env = make_env()
    env.create_temporary_view("t", env.from_elements([(1, 2)], ["a", "b"]))
    cases = {
        "SELECT PERCENT_RANK() OVER (ORDER BY a) FROM t": "not supported yet",
        "SELECT a, RANK() OVER (ORDER BY a) FROM t": "needs a filter on it",
        "SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t": "needs a filter on it",
        "SELECT SUM(a) OVER (ORDER BY a ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM t": "ends at CURRENT ROW",
        "SELECT SUM(a) OVER (ORDER BY a), SUM(b) OVER (PARTITION BY a ORDER BY a) FROM t": "must be the same",
        "SELECT SUM(a) OVER (ORDER BY a) FROM t": "ordered by a time attribute",
        "SELECT a FROM t WHERE SUM(a) OVER (ORDER BY a) > 1": "cannot be in WHERE",
        "SELECT SUM(a) OVER (ORDER BY a), COUNT(*) FROM t": "cannot be in one SELECT",
    }
    for sql, message in cases.items():
        with pytest.raises(Exception, match=message):
            env.sql_query(sql).execute().collect().__next__()


def scores_env(streaming, rows, per_batch):
    """An environment with view `scores` (id, k, score) of `rows`, in several batches, so
    ranks move while the job runs."""
    env = make_env(streaming=streaming)
    parts = [env.from_elements(rows[i : i + per_batch], ["id", "k", "score"]) for i in range(0, len(rows), per_batch)]
    t = parts[0]
    for p in parts[1:]:
        t = t.union_all(p)
    env.create_temporary_view("scores", t)
    return env


def changelog_end(table):
    """The rows a changelog ends as (a retraction must follow its row)."""
    state = []
    for r in table.execute().collect():
        if r.get_row_kind().value in (0, 2):
            state.append(tuple(r))
        else:
            assert tuple(r) in state, f"{r} retracted but never emitted"
            state.remove(tuple(r))
    return state


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_top_n_and_deduplication_end_as_the_best_rows_of_each_key(streaming):
    rng = random.Random(SEED + 17)
    n = 2000
    rows = [(i, rng.randrange(7), rng.randrange(1000)) for i in range(n)]
    env = scores_env(streaming, rows, 300)
    state = changelog_end(env.sql_query(
        "SELECT id, k, score, rn FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY score DESC, id) AS rn FROM scores) WHERE rn <= 3"
    ))
    expected = []
    for k in range(7):
        best = sorted((r for r in rows if r[1] == k), key=lambda r: (-r[2], r[0]))[:3]
        expected += [(i, k, s, rank + 1) for rank, (i, _, s) in enumerate(best)]
    assert sorted(state) == sorted(expected)


@pytest.mark.parametrize("func", ["RANK", "DENSE_RANK"])
@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "batch"])
def test_rank_and_dense_rank_end_as_ranked_ties(streaming, func):
    """Scores with many ties (0..19): the changelog ends as the rows ranked <= 3 by a plain
    Python ranking of all input."""
    rng = random.Random(SEED + 23)
    n = 1500
    rows = [(i, rng.randrange(5), rng.randrange(20)) for i in range(n)]
    env = scores_env(streaming, rows, 250)
    state = changelog_end(env.sql_query(
        f"SELECT id, k, score, r FROM (SELECT *, {func}() OVER (PARTITION BY k ORDER BY score DESC) AS r FROM scores) WHERE r <= 3"
    ))
    expected = []
    for k in range(5):
        mine = [r for r in rows if r[1] == k]
        for i, _, s in mine:
            higher = {x[2] for x in mine if x[2] > s} if func == "DENSE_RANK" else [x for x in mine if x[2] > s]
            rank = len(higher) + 1
            if rank <= 3:
                expected.append((i, k, s, rank))
    assert sorted(state) == sorted(expected), f"seed {SEED + 23}"
