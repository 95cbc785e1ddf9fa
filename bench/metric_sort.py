"""Sorting runs on a summary metric without fresh statistics (issue #13: 12.9 s over 116k runs, 0.17 s after
ANALYZE): the query before (one LEFT JOIN of the summaries, sorted) on the schema before migration 0007, against
``models.queries.page`` on the schema at head (an index per metric on (dynamics, metric, run_id), read in its
order), each on a fresh PostgreSQL database of its own filled alike with autovacuum off (so nothing is ANALYZEd),
then both again after ANALYZE. Prints the median time of the first page (50 runs) of a few sorts and the ratios.

    python -m bench.metric_sort [--runs 116000] [--postgres postgresql+psycopg://root@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import migrations
from bench.common import median_time
from core import get_sessionmaker
from models import Run
from models.queries import RunQuery, filtered, page, _sort_column

FILL = [
    "ALTER TABLE runs SET (autovacuum_enabled = off)",
    "ALTER TABLE run_summaries SET (autovacuum_enabled = off)",
    """INSERT INTO runs (id, created_at, status, attempts, request, cache_key, d, rank, gamma_sigma2, gamma_w, sigma2,
           width, dynamics, backend_requested, regime, theory_applies, underparametrised, progress_step,
           progress_total, has_comparison)
       SELECT gen_random_uuid(), now() - make_interval(secs => i), CASE WHEN i % 20 = 0 THEN 'queued' ELSE
           'succeeded' END, 1, '{}'::json, md5(i::text), 50 + i % 200, 5, -1.5 - (i % 7) * 0.1, 2.0 + (i % 5) * 0.1,
           0.01, 400, CASE WHEN i % 3 = 0 THEN 'gd,self_consistent' ELSE 'gd' END, 'auto', 'mixed', true, false,
           100, 100, false
       FROM generate_series(1, :n) AS i""",
    """INSERT INTO run_summaries (run_id, dynamics, position, min_test_error, min_test_error_step, stable_rank_at_min,
           rank_at_min, final_train_error, final_test_error, steps_run, stop_reason)
       SELECT id, 'gd', 0, random(), (random() * 100)::int, 1 + random() * 5, (random() * 5)::int, random(),
           random(), 100, 'max_steps'
       FROM runs WHERE status = 'succeeded'""",
    """INSERT INTO run_summaries (run_id, dynamics, position, min_test_error, min_test_error_step, stable_rank_at_min,
           rank_at_min, final_train_error, final_test_error, steps_run, stop_reason)
       SELECT id, 'self_consistent', 1, random(), (random() * 100)::int, 1 + random() * 5, (random() * 5)::int,
           random(), random(), 100, 'max_steps'
       FROM runs WHERE status = 'succeeded' AND dynamics = 'gd,self_consistent'""",
]
SORTS = ("min_test_error", "-min_test_error", "stable_rank_at_min", "-final_test_error")


def legacy_page(session: Session, q: RunQuery, limit: int) -> list[Run]:
    """The first page as it was read before: every run LEFT JOIN its summary, sorted on (null, value, id)."""
    col = _sort_column(q)
    order = (col.desc(), Run.id.desc()) if q.descending else (col.asc(), Run.id.asc())
    return list(session.scalars(filtered(q).order_by(col.is_(None), *order).limit(limit + 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=116_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--postgres", default=os.environ.get("LINDYN_TEST_POSTGRES_URL",
                                                         "postgresql+psycopg://root@127.0.0.1:5432/postgres"))
    args = ap.parse_args()
    admin = create_engine(make_url(args.postgres), isolation_level="AUTOCOMMIT")
    names = {"before": f"lindyn_bench_sort_before_{uuid.uuid4().hex[:6]}",
             "after": f"lindyn_bench_sort_after_{uuid.uuid4().hex[:6]}"}
    urls = {k: make_url(args.postgres).set(database=v).render_as_string(hide_password=False) for k, v in names.items()}
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.runs} runs, medians of "
          f"{args.repeats}")
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        migrations.upgrade(urls["before"], "0006_reliability_guards")
        migrations.upgrade(urls["after"], "head")
        for url in urls.values():
            with create_engine(url).begin() as conn:
                for sql in FILL:
                    conn.execute(text(sql), {"n": args.runs})
        readers: dict[str, Callable[[Session, RunQuery], Any]] = {
            "before": lambda s, q: legacy_page(s, q, 50), "after": lambda s, q: page(s, q, limit=50)[0]}
        for phase in ("no statistics", "after ANALYZE"):
            if phase == "after ANALYZE":
                for url in urls.values():
                    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
                        conn.execute(text("ANALYZE"))
            print(f"-- {phase}")
            for sort in SORTS:
                q = RunQuery(dynamics="gd", sort=sort)
                t = {}
                for which, read in readers.items():
                    factory = get_sessionmaker(urls[which])

                    def once(read: Callable[[Session, RunQuery], Any] = read, factory: Any = factory) -> None:
                        with factory() as s:
                            assert len(read(s, q)) >= 50
                            s.rollback()

                    t[which] = median_time(once, args.repeats)
                print(f"sort={sort:20s} before {t['before'] * 1e3:9.1f} ms   after {t['after'] * 1e3:7.1f} ms   "
                      f"before/after {t['before'] / t['after']:8.1f}")
    finally:
        from core import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
