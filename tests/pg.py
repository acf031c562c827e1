"""A throw-away PostgreSQL server for the tests: Debian's ``postgresql`` package's binaries
(``/usr/lib/postgresql/<version>/bin``, or ``initdb`` on the PATH), a cluster in a temporary folder, a free port on
127.0.0.1, its unix socket inside that folder, trust authentication, one database; stopped and removed by
:meth:`Cluster.remove`. PostgreSQL refuses to run as root, so as root the binaries run as the ``postgres`` user
(``runuser``), which owns the folder.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres`` (the newest Debian version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def missing() -> str | None:
    """Why no server can be started here (one line), or None."""
    if binaries() is None:
        return ("PostgreSQL's binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): "
                "apt-get install postgresql, as .ci/run does")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root needs the 'postgres' user (Debian's postgresql package creates it)"
        if shutil.which("runuser") is None:
            return "running as root needs runuser (util-linux) to start PostgreSQL as the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A PostgreSQL cluster in its own temporary folder; :attr:`url` is its database's SQLAlchemy URL."""

    def __init__(self, database: str = "workshop"):
        self.bin = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="gradcam-pg-"))
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        try:
            self._pg("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            self.start()
            import psycopg

            with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                                 autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
        except BaseException:
            self.remove()
            raise
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pg(self, program: str, *args) -> None:
        command = [str(self.bin / program), *map(str, args)]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            tail = (self.log.read_text(errors="replace") if self.log.is_file() else "") + done.stderr + done.stdout
            last = [line for line in tail.splitlines() if line.strip()][-1:] or ["no output"]
            raise RuntimeError(f"{program} failed with exit code {done.returncode}: {last[0]}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._pg("pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", self.log, "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, disconnect, shut down cleanly)."""
        self._pg("pg_ctl", "stop", "-w", "-t", "60", "-D", self.data, "-m", mode)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
