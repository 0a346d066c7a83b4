"""``segment_usage`` (migration 010) is kept by database triggers: after every kind of change to
``segment`` — insert (one and many), truncation, marking missing and back, a move to another
volume, deletes (one, a chunk, and by cascade from a removed camera) — it equals a scan of the
segment table, on both engines; and migrating fills it from segments already there."""

from __future__ import annotations

from pathlib import Path

import peewee as pw

from vms.db import models as m
from vms.db.gateway import Gateway, migrate


def scanned() -> dict[tuple[int, str, str], tuple[int, int]]:
    query = (m.Segment.select(m.Segment.camera, m.Segment.stream, m.Segment.volume,
                              pw.fn.SUM(m.Segment.size_bytes), pw.fn.COUNT(m.Segment.id))
             .where(m.Segment.state != "missing")
             .group_by(m.Segment.camera, m.Segment.stream, m.Segment.volume).tuples())
    return {(int(c), s, v): (int(b), int(n)) for c, s, v, b, n in query}


def counted() -> dict[tuple[int, str, str], tuple[int, int]]:
    u = m.SegmentUsage
    query = u.select(u.camera_id, u.stream, u.volume, u.bytes, u.segments).tuples()
    return {(int(c), s, v): (int(b), int(n)) for c, s, v, b, n in query if n}


def _insert_only_existing(model: type[m.BaseModel], **values: object) -> int:
    """Insert a row with today's model into a table of an older schema: the columns (with their
    defaults) that later migrations added are left out."""
    db = model._meta.database
    existing = {c.name for c in db.get_columns(model._meta.table_name)}
    sql, params = model.insert(**values).sql()
    head, _, tail = sql.partition(") VALUES (")
    table, _, cols = head.partition(" (")
    names = [c.strip().strip('"') for c in cols.split(",")]
    keep = [i for i, name in enumerate(names) if name in existing]
    sql = (f"{table} ({', '.join(chr(34) + names[i] + chr(34) for i in keep)}) VALUES "
           f"({', '.join(db.param for _ in keep)}) RETURNING id")
    return int(db.execute_sql(sql, [params[i] for i in keep]).fetchone()[0])


def _world() -> tuple[int, int, int, int]:
    """Rows written with the schema of the day (also a database not yet at the last migration)."""
    site = m.Site.create(name="s", created_us=0)
    cams = [_insert_only_existing(m.Camera, site=site, name=n, status_since_us=0, created_us=0,
                                  updated_us=0) for n in ("a", "b")]
    runs = [_insert_only_existing(m.Run, camera=c, start_us=0) for c in cams]
    return cams[0], cams[1], runs[0], runs[1]


def _seg(cam: int, run: int, i: int, size: int, stream: str = "main",
         volume: str = "main") -> dict[str, object]:
    return dict(camera=cam, run=run, stream=stream, volume=volume, path=f"{cam}/{stream}/{i}",
                start_us=i * 10, end_us=i * 10 + 10, duration_us=10, size_bytes=size)


def test_usage_follows_every_change(db_url: str) -> None:
    gw = Gateway(db_url)
    gw.migrate()
    try:
        a, b, run_a, run_b = gw.write_sync(_world)

        def check() -> None:
            assert gw.read_sync(counted) == gw.read_sync(scanned)

        first = gw.write_sync(lambda: m.Segment.create(**_seg(a, run_a, 0, 1000)).id)
        check()
        gw.write_sync(lambda: m.Segment.insert_many(
            [_seg(a, run_a, i, 100 + i) for i in range(1, 2500)]
            + [_seg(a, run_a, i, 7, stream="sub", volume="spare") for i in range(40)]
            + [_seg(b, run_b, i, 50) for i in range(30)]).execute())
        check()
        assert gw.read_sync(counted)[(a, "main", "main")] == (
            1000 + sum(100 + i for i in range(1, 2500)), 2500)
        gw.write_sync(lambda: m.Segment.update(size_bytes=400, end_us=5).where(
            m.Segment.id == first).execute())  # truncated
        check()
        gw.write_sync(lambda: m.Segment.update(state="missing").where(
            (m.Segment.camera == a) & (m.Segment.start_us < 500)).execute())
        check()
        gw.write_sync(lambda: m.Segment.update(state="ok").where(
            m.Segment.id == first).execute())  # a missing file is back
        check()
        gw.write_sync(lambda: m.Segment.update(volume="spare").where(
            (m.Segment.camera == a) & (m.Segment.start_us >= 20_000)).execute())
        check()
        gw.write_sync(lambda: m.Segment.delete().where(m.Segment.id == first).execute())
        check()
        chunk = gw.read_sync(lambda: [s.id for s in m.Segment.select(m.Segment.id)
                                      .order_by(m.Segment.id).limit(1000)])
        gw.write_sync(lambda: m.Segment.delete().where(m.Segment.id.in_(chunk)).execute())
        check()
        gw.write_sync(lambda: m.Camera.delete().where(m.Camera.id == b).execute())  # cascade
        check()
        assert (b, "main", "main") not in gw.read_sync(counted)
    finally:
        gw.close()


def test_migration_fills_usage_from_existing_segments(tmp_path: Path) -> None:
    """A database at migration 007 with segments: 010 counts them."""
    from vms.db.gateway import open_database

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    db = open_database(url)
    staged = tmp_path / "migrations"
    staged.mkdir()
    here = Path(__file__).resolve().parents[2] / "migrations"
    for f in here.glob("00*.py"):
        (staged / f.name).write_text(f.read_text())
    (staged / "__init__.py").write_text("")
    with db.connection_context():
        migrate(db, staged)
    db.close()
    gw = Gateway(url)
    try:
        a, _b, run_a, _ = gw.write_sync(_world)
        gw.write_sync(lambda: m.Segment.insert_many(
            [_seg(a, run_a, i, 10 + i) for i in range(100)]).execute())
        assert "010_storage_accounting" in gw.migrate()
        assert gw.read_sync(counted) == gw.read_sync(scanned) == {
            (a, "main", "main"): (sum(10 + i for i in range(100)), 100)}
    finally:
        gw.close()
