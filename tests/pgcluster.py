"""A private PostgreSQL cluster for the tests: initdb into a temporary directory, started on a free port
with its socket there (no TCP), trust authentication, stopped at the end. Run as root, the server runs
as the `postgres` user (it refuses to run as root). Debian's binaries are found under
/usr/lib/postgresql/<version>/bin unless SWITCHBOARD_PG_BIN names the directory. Without them the
PostgreSQL tests skip loudly, unless SWITCHBOARD_REQUIRE_POSTGRES=1 (set by .ci/run) makes that a failure.

One cluster serves a whole test process (`shared()`). With SWITCHBOARD_TEST_DB=postgresql every database a
test names gets its own database there (`database_for`), copied from a template migrated once, so a new
one costs a file copy instead of a migration."""
import atexit
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import psycopg
import pytest

from conftest import ROOT, free_port

TEMPLATE = "switchboard_template"


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
        # in memory where there is /dev/shm: a new database from the template took 0.1-0.4 s on a
        # busy disk, 0.03 s there
        self.directory = tempfile.mkdtemp(prefix="switchboard-pg-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.port = free_port()
        self._databases = 0
        self._admin = None
        self._template = False

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
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300", "start")
        self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
        return self

    def stop(self):
        if self._admin is not None:
            self._admin.close()
        self._run(_bin("pg_ctl"), "-D", os.path.join(self.directory, "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database):
        return f"postgresql://postgres@/{database}?host={self.directory}&port={self.port}"

    def _new_name(self):
        self._databases += 1
        return f"test{os.getpid()}_{self._databases}"

    def create_database(self):
        """The URL of a new, empty database."""
        name = self._new_name()
        self._admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_migrated(self):
        """The URL of a new database at the latest schema (a copy of the template, migrated the first
        time by a process of its own: this one's models.db may be serving a test)."""
        if not self._template:
            self._admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
            subprocess.run([sys.executable, "-c", "import sys, models; models.init_db(sys.argv[1]); models.migrate()",
                            self.url(TEMPLATE)], cwd=ROOT, check=True, capture_output=True, timeout=60)
            # a connection to the template would make CREATE DATABASE wait for it to leave (0.1 s steps)
            self._admin.execute(f'ALTER DATABASE "{TEMPLATE}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            self._template = True
        name = self._new_name()
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return self.url(name)

    def drop(self, url):
        """Drop a database made here, ending any connection still open to it."""
        name = url.split("?")[0].rsplit("/", 1)[1]
        self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_shared = None


def shared():
    """This process's cluster, started on first use and stopped when the process exits."""
    global _shared
    if _shared is None:
        require_postgres()
        _shared = Cluster().start()
        atexit.register(_shared.stop)
    return _shared


_databases = {}  # a test's database path -> the PostgreSQL database standing for it


def database_for(path):
    """The PostgreSQL database standing for the SQLite file `path` a test names: the same one each time
    the test names it (a server restarted on its file finds its data), a new migrated one the first time."""
    key = str(path)
    if key not in _databases:
        _databases[key] = shared().create_migrated()
    return _databases[key]


def drop_databases_since(count):
    """Drop the databases made for paths named after the first `count` (a test's own, once it ended)."""
    for key in list(_databases)[count:]:
        _shared.drop(_databases.pop(key))
