#!/usr/bin/env python3
"""A small HTTP service that reads PostgreSQL credentials from a ramsecrets
file and follows their rotation: the pattern the ramsecrets drill tests.

It holds one database connection, opened with the credentials in the file
(`format: json`, with `username` and `password`; `host`, `port` and `dbname`
when present override the command line). `GET /healthz` answers 200 only when
`SELECT 1` succeeds on it. When told, by SIGHUP or by the file changing, it
reads the file again and opens a new connection with the new credentials
before it closes the old one, so no request fails during a rotation. When the
credentials in the file do not log in and `FILE.previous` exists (ramsecrets
writes it for AWS secrets with `previous: true`), it falls back to those.

`--no-reload` starts it without that handler: it reads the file once, as many
apps do. With `--max-conn-age`, connections are replaced after that age, as a
connection pool recycles them; without the handler, the first replacement
after a rotation fails, and the drill shows it.

Values are never logged or answered.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg


def log(message):
    print(f"drill-app: {message}", file=sys.stderr, flush=True)


class Database:
    """One connection, opened with the credentials that last worked."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.conn = None
        self.opened = 0.0
        self.creds = None  # (username, password, host, port, dbname)
        self.which = None  # "current" or "previous"
        self.generation = 0
        self.loaded = None  # what the credentials files looked like when last read
        self.reloading = threading.Lock()

    def read(self, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        a = self.args
        return (
            str(doc["username"]),
            str(doc["password"]),
            str(doc.get("host", a.db_host)),
            int(doc.get("port", a.db_port)),
            str(doc.get("dbname", a.dbname)),
        )

    def connect(self, creds):
        user, password, host, port, dbname = creds
        return psycopg.connect(
            host=host, port=port, dbname=dbname, user=user, password=password,
            connect_timeout=5, autocommit=True,
        )

    def open_from_files(self):
        """A connection with the file's credentials, else with FILE.previous."""
        path = self.args.credentials
        errors = []
        for which, p in (("current", path), ("previous", path + ".previous")):
            if which == "previous" and not os.path.exists(p):
                break
            try:
                creds = self.read(p)
                return self.connect(creds), creds, which
            except (OSError, ValueError, KeyError, psycopg.Error) as e:
                errors.append(f"{which}: {type(e).__name__}")
        raise RuntimeError("cannot connect with the credentials file (" + ", ".join(errors) + ")")

    def files(self):
        """What the credentials files look like now (inode, size, mtime)."""
        def sig(p):
            try:
                st = os.stat(p)
                return (st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                return None
        path = self.args.credentials
        return (sig(path), sig(path + ".previous"))

    def reload(self, why):
        """Reads the file again and swaps in a connection opened with it,
        unless the files are as they were when last read (a SIGHUP and the
        file watch both tell of one change)."""
        with self.reloading:
            files = self.files()
            if files == self.loaded:
                return
            self.loaded = files
            try:
                conn, creds, which = self.open_from_files()
            except RuntimeError as e:
                log(f"{why}: {e}; keeping the connection in use")
                return
            self.swap(conn, creds, which, why)

    def swap(self, conn, creds, which, why):
        with self.lock:
            old, self.conn, self.creds, self.which = self.conn, conn, creds, which
            self.opened = time.monotonic()
            self.generation += 1
        if old is not None:
            old.close()
        log(f"{why}: reconnected with the {which} credentials (generation {self.generation})")

    def healthy(self):
        """SELECT 1 on the connection, replacing it when it is too old or broken."""
        with self.lock:
            age = self.args.max_conn_age
            if self.conn is not None and age > 0 and time.monotonic() - self.opened > age:
                self.conn.close()
                self.conn = None
            for attempt in (1, 2):
                try:
                    if self.conn is None or self.conn.closed:
                        if self.creds is None:
                            return False
                        self.conn = self.connect(self.creds)
                        self.opened = time.monotonic()
                    self.conn.execute("SELECT 1").fetchone()
                    return True
                except psycopg.Error as e:
                    log(f"query failed ({type(e).__name__}), attempt {attempt}")
                    if self.conn is not None:
                        self.conn.close()
                    self.conn = None
            return False


def watch(db, stop):
    """Reloads when a credentials file is replaced (ramsecrets renames a new file in)."""
    while not stop.wait(0.2):
        if db.files() != db.loaded:
            db.reload("credentials file changed")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--credentials", required=True, help="the ramsecrets file (format: json)")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve /healthz on")
    p.add_argument("--db-host", default="127.0.0.1")
    p.add_argument("--db-port", type=int, default=5432)
    p.add_argument("--dbname", default="postgres")
    p.add_argument("--pid-file", help="write the process id here (for on_change: signal)")
    p.add_argument("--no-reload", action="store_true",
                   help="no reconnect handler: read the credentials once (to see a drill fail)")
    p.add_argument("--max-conn-age", type=float, default=0,
                   help="replace connections older than this many seconds (0: never)")
    args = p.parse_args()

    db = Database(args)
    stop = threading.Event()
    try:
        db.loaded = db.files()
        conn, creds, which = db.open_from_files()
        db.conn, db.creds, db.which, db.opened = conn, creds, which, time.monotonic()
        log(f"connected with the {which} credentials")
    except RuntimeError as e:
        log(f"{e}; /healthz answers 503 until it can connect")
        try:
            db.creds = db.read(args.credentials)
        except (OSError, ValueError, KeyError):
            pass

    if args.no_reload:
        signal.signal(signal.SIGHUP, lambda *_: log("SIGHUP ignored: started with --no-reload"))
    else:
        hup = threading.Event()
        signal.signal(signal.SIGHUP, lambda *_: hup.set())

        def on_hup():
            while not stop.is_set():
                if hup.wait(0.5):
                    hup.clear()
                    db.reload("SIGHUP")
        threading.Thread(target=on_hup, daemon=True).start()
        threading.Thread(target=watch, args=(db, stop), daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/healthz":
                self.answer(404, "not found\n")
            elif db.healthy():
                self.answer(200, f"ok credentials={db.which} generation={db.generation}\n")
            else:
                self.answer(503, "database unavailable\n")

        def answer(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    log(f"listening on {args.listen} ({'no reload' if args.no_reload else 'reloads on SIGHUP and file change'})")
    server.serve_forever()
    stop.set()


if __name__ == "__main__":
    main()
