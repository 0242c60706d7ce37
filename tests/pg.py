"""A real PostgreSQL server for the tests: initdb into a temporary directory, pg_ctl start.

Runs as the `postgres` system user when the tests run as root (PostgreSQL refuses root),
listens on 127.0.0.1 only, and is stopped at the end of the session. `.ci/run` installs
Debian's `postgresql` package when it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"{name} not found: install Debian's postgresql package (.ci/run does this)"
        )
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    port: int
    socket_dir: Path
    data_dir: Path
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> None:
        subprocess.run(
            [
                _bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)


def _as_postgres() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}


def start_postgres() -> Iterator[PostgresServer]:
    """Start a throw-away server; yields it, stops and removes it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    data_dir, socket_dir = root / "data", root / "sock"
    data_dir.mkdir()
    socket_dir.mkdir()
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for path in (root, data_dir, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    demote = _as_postgres()
    subprocess.run(
        [
            _bin("initdb"),
            "-D",
            str(data_dir),
            "-U",
            user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        **demote,  # type: ignore[call-overload]
    )
    port = _free_port()
    options = (
        f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            _bin("pg_ctl"),
            "-D",
            str(data_dir),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        **demote,  # type: ignore[call-overload]
    )
    try:
        yield PostgresServer(port=port, socket_dir=socket_dir, data_dir=data_dir, user=user)
    finally:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            **demote,  # type: ignore[call-overload]
        )
        shutil.rmtree(root, ignore_errors=True)
