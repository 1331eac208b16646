"""A private PostgreSQL cluster for the tests: initdb into a temporary directory, started on a free port
with its socket there (no TCP), trust authentication, stopped at the end. Run as root, the server runs
as the `postgres` user (it refuses to run as root). Debian's binaries are found under
/usr/lib/postgresql/<version>/bin unless SWITCHBOARD_PG_BIN names the directory. Without them the
PostgreSQL tests skip loudly, unless SWITCHBOARD_REQUIRE_POSTGRES=1 (set by .ci/run) makes that a failure."""
import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import free_port


def _bin(name):
    directory = os.environ.get("SWITCHBOARD_PG_BIN") or max(glob.glob("/usr/lib/postgresql/*/bin"), default="")
    return os.path.join(directory, name) if directory else shutil.which(name)


def require_postgres():
    if _bin("initdb") is None or not os.path.exists(_bin("initdb")):
        reason = "POSTGRESQL TESTS NOT RUN: initdb is not installed (apt-get install postgresql)."
        if os.environ.get("SWITCHBOARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " SWITCHBOARD_REQUIRE_POSTGRES=1 does not allow skipping them.")
        pytest.skip(reason)


class Cluster:
    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="switchboard-pg-")
        self.port = free_port()
        self._databases = 0

    def _run(self, *command):
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=60)

    def start(self):
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        data = os.path.join(self.directory, "data")
        self._run(_bin("initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", data)
        self._run(_bin("pg_ctl"), "-D", data, "-l", os.path.join(self.directory, "log"), "-w", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses='' -c fsync=off "
                  "-c max_connections=300", "start")
        return self

    def stop(self):
        self._run(_bin("pg_ctl"), "-D", os.path.join(self.directory, "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database):
        return f"postgresql://postgres@/{database}?host={self.directory}&port={self.port}"

    def create_database(self):
        """The URL of a new, empty database."""
        self._databases += 1
        name = f"test{os.getpid()}_{self._databases}"
        self._run(_bin("createdb"), "-h", self.directory, "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)
