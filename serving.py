"""The gunicorn worker `python app.py serve` runs: gunicorn's gevent worker, accepting in turns, its
startup objects frozen out of the garbage collector's walks, each answer's headers sent with its body.

gevent's server accepts up to 100 connections every time the event loop polls, and each new
connection's greenlet is queued to run ahead of work already waiting. While connections arrive faster
than the worker answers them (a burst of thousands, bench/abuse.py), that queue grows without bound and
a request on an open connection, `/health` included, waits behind all of it: about a second for a
burst of 10,000. Here accepting is one turn among the others: a batch of at most ACCEPT_BATCH, then no
more until every greenlet that was runnable when the batch ended has had its turn. Connections the
worker has not yet accepted wait in the kernel's listen backlog, where they cost it nothing.
"""
import gc

from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers import ggevent

# Small enough that one batch's answers (about half a millisecond each) delay others by a few ms.
ACCEPT_BATCH = 16


class TakingTurnsServer(StreamServer):
    max_accept = ACCEPT_BATCH
    _turn_pending = False

    def _do_read(self):
        super()._do_read()
        if self._watcher is not None:  # still accepting: not stopped for a full pool or an error
            self.stop_accepting()
            self._turn_pending = True
            # Loop callbacks run in order, after those already queued (greenlets that yielded or were
            # just spawned, this batch's included).
            self.loop.run_callback(self._next_turn)

    def _next_turn(self):
        self._turn_pending = False
        self._start_accepting_if_started()

    def start_accepting(self):
        # The pool also restarts accepting when a connection ends; never before this turn comes.
        if not self._turn_pending:
            super().start_accepting()


# Bodies up to this size are copied behind their headers: past it, a second send costs less than the copy.
ONE_SEND_BYTES = 64 << 10


class OneSendResponse(wsgi.Response):
    """gunicorn's response, whose headers and body went out in two sends: on 127.0.0.1 each send runs
    the receiving side's TCP work too, and the headers' own send was a quarter of the worker's CPU for
    a /health answer (bench/client.py). A whole body (not chunked, within its Content-Length), written
    before the headers, now goes in one send with them; anything else is gunicorn's own write."""

    def write(self, arg):
        if (self.headers_sent or self.chunked or self._omits_body or type(arg) is not bytes or not arg
                or len(arg) > ONE_SEND_BYTES or (self.response_length is not None and len(arg) > self.response_length)):
            return super().write(arg)
        # As gunicorn's send_headers (27.0.1), the bytes kept for the one send.
        head = self.default_headers()
        head.extend([f"{k}: {v}\r\n" for k, v in self.headers])
        self.headers_sent = True
        self.sent += len(arg)
        util.write(self.sock, util.to_bytestring("".join(head) + "\r\n", "latin-1") + arg)


class Worker(ggevent.GeventWorker):
    """gunicorn's gevent worker with TakingTurnsServer as its server and OneSendResponse as its answers."""

    def init_process(self):
        # GeventWorker.run builds its servers from this module-level name, wsgi.create its answers from
        # that one (gunicorn 27.0.1).
        ggevent.StreamServer = TakingTurnsServer
        wsgi.Response = OneSendResponse
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        # Everything loaded so far (about 60,000 objects: the app, its libraries) lives as long as
        # the process: frozen, the collector no longer walks it. A full collection of it blocked the
        # worker for 20-150 ms (more on a loaded machine) every so often during a burst of requests.
        gc.collect()
        gc.freeze()
        # A 100-line append makes tens of thousands of short-lived objects, nearly all freed by their
        # counts: at the default 700 allocations a young collection ran dozens of times per request
        # for next to nothing, a tenth of the worker's CPU per appended line (bench/client.py).
        gc.set_threshold(20_000, 20, 20)
