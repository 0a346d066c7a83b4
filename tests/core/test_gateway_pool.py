"""The PostgreSQL pool hands out an idle connection without a ``SELECT 1`` round trip
(vms/db/gateway.py ``_PostgresPool``), and still never hands out one the server has closed."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from vms.db.gateway import Gateway
from vms.db.models import Site

pytestmark = pytest.mark.engines("postgresql")


def _backend_pid(gw: Gateway) -> int:
    return int(gw.read_sync(lambda: gw.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]))


def test_a_terminated_connection_is_not_handed_out_again(db_url: str, engine: str) -> None:
    gw = Gateway(db_url)
    try:
        pid = _backend_pid(gw)
        assert _backend_pid(gw) == pid  # reused from the pool, not reconnected
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            for _ in range(100):  # the backend ends on its own time: until it has gone
                if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                 (pid,)).fetchone()[0] == 0:
                    break
                time.sleep(0.02)
        # the server closed it: the next read gets a new connection and works
        for _ in range(3):
            assert gw.read_sync(lambda: Site.select().count()) == 0
        assert _backend_pid(gw) != pid
    finally:
        gw.close()


def test_an_idle_pooled_connection_is_handed_out_without_a_round_trip(db_url: str,
                                                                      engine: str) -> None:
    gw = Gateway(db_url)
    try:
        pid = _backend_pid(gw)
        gw.read_sync(lambda: gw.db.execute_sql("SELECT 'marker-before'"))
        gw.read_sync(lambda: None)  # a check-out that runs nothing: no statement reaches the server
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            query = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s",
                                  (pid,)).fetchone()[0]
        assert query == "SELECT 'marker-before'", query  # not "SELECT 1"
    finally:
        gw.close()
