"""Serve a WSGI application (Flask, Django, ...) on the cymongoose event loop.

The loop thread parses HTTP and writes responses; the application runs in a
pool of worker threads, so a slow view never stalls other connections.  A
worker hands its results back to the loop with ``Manager.wakeup`` (which
carries payloads of any size), and the loop writes them: a body that is a
list goes out as one response with Content-Length, any other iterable is
streamed with chunked encoding as the worker produces it.  Responses leave in
request order even when a client pipelines requests.

    from cymongoose.wsgi import serve
    serve(app, "http://127.0.0.1:8000", workers=8)
"""
import collections
import io
import os
import queue
import stat
import threading

from ._report import report
from ._mongoose import (_WsgiEnvironBuilder, _WsgiStart, MG_EV_CLOSE, MG_EV_HTTP_HDRS,
                        MG_EV_HTTP_MSG, MG_EV_READ, MG_EV_WAKEUP, MG_EV_WRITE, Manager)

__all__ = ["FileWrapper", "WSGIServer", "serve"]

# A streamed body is taken from the worker only while the connection has
# less than this queued, and a worker waits while this much is buffered for
# it: a client that reads slowly slows the application, memory stays bounded.
STREAM_WINDOW = 1 << 20

# Request bodies declared longer than this, and chunked ones, are streamed:
# wsgi.input reads them from the connection as the application asks (at
# most BODY_WINDOW bytes wait for it); shorter ones are read whole before
# the app runs.
STREAM_BODY = 64 * 1024
BODY_WINDOW = 1 << 20

# Chunked request bodies are refused (400/413, the connection closes) beyond this.
MAX_BODY = 16 << 20

class FileWrapper:
    """``environ["wsgi.file_wrapper"]`` (PEP 3333): wraps a file-like object
    as the response body.  Iterating reads blksize blocks; but when the
    object is a real file (a regular file with fileno()), WSGIServer sends
    it from its current position with sendfile(2) instead, never reading it
    into Python."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block


def _real_file(result):
    """(fd, offset, length) of a FileWrapper over a regular file, the fd a
    duplicate owned by the caller; None for anything else."""
    if not isinstance(result, FileWrapper):
        return None
    try:
        fd = result.filelike.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        offset = result.filelike.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return os.dup(fd), offset, max(0, st.st_size - offset)


class _BodyStream(io.RawIOBase):
    """The raw wsgi.input of a streamed request body (wrapped in a
    BufferedReader): a worker's read waits for pieces the loop thread takes
    from the connection when asked (_feed), so the body is read from the
    socket only as fast as the application reads it."""

    def __init__(self, server, conn_id, length):
        super().__init__()
        self.server, self.conn_id = server, conn_id
        self.pieces = collections.deque()  # taken from the connection, not read yet
        self.buffered = 0
        self.left = length   # bytes the loop has not taken yet (-1: chunked, not at its end)
        self.wanted = False  # a worker waits for more
        self.gone = False    # the connection closed

    def readable(self):
        return True

    def readinto(self, b):
        server = self.server
        with server._lock:
            while not self.pieces and self.left and not self.gone:
                self.wanted = True
                server._notify(self.conn_id)
                if not server._lock.wait_for(
                        lambda: self.pieces or not self.left or self.gone or server._stop.is_set(),
                        server.stream_timeout):
                    raise TimeoutError("the client stopped sending the request body")
                if server._stop.is_set():
                    break
            if not self.pieces:
                if self.left and self.gone:
                    # the app must not take a cut body for a whole one
                    raise ConnectionError("the request body ended early (client gone or "
                                          "malformed chunked body)")
                return 0
            piece = self.pieces[0]
            n = min(len(b), len(piece))
            b[:n] = piece[:n]
            if n == len(piece):
                self.pieces.popleft()
            else:
                self.pieces[0] = piece[n:]
            self.buffered -= n
            if self.buffered < BODY_WINDOW // 2 and self.left:
                self.wanted = True
                server._notify(self.conn_id)
            return n


class _Response:
    """What a worker produced for one request; filled by the worker thread,
    written by the loop thread once it is this connection's turn."""

    __slots__ = ("server", "conn_id", "status", "headers", "parts", "buffered", "streaming", "done",
                 "aborted", "file", "body")

    def __init__(self, server, conn_id):
        self.server, self.conn_id = server, conn_id
        self.status = 500
        self.headers = []
        self.parts = collections.deque()  # body pieces not yet written
        self.buffered = 0                 # their total size
        self.streaming = False            # chunked: head written, parts follow
        self.done = False                 # the worker has finished
        self.aborted = False              # a streamed body failed midway: close, don't end it
        self.file = None                  # (fd, offset, length): a body sent with sendfile
        self.body = None                  # the _BodyStream of a streamed request body

    def write(self, data):
        """The legacy write() that start_response returns."""
        self.server._push(self.conn_id, self, data)


class _Failed:
    """The head of a 500 the server answers itself (what _WsgiStart gives)."""
    status = 500
    headers = [("Content-Type", "text/plain")]


_FAILED = _Failed()


class WSGIServer:
    """An HTTP server running app(environ, start_response) on worker threads.

    workers: size of the thread pool.  error_handler: called with exceptions
    of the application (else they are printed); the client gets a 500.
    stream_timeout: seconds a worker may wait for the loop to take a streamed
    chunk before it gives up on a client that stopped reading.
    """

    multiprocess = False  # True in worker processes (serve(processes=N))

    def __init__(self, app, workers=4, error_handler=None, stream_timeout=5.0, *,
                 stream_body=STREAM_BODY, max_body=MAX_BODY):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.app = app
        self.error_handler = error_handler
        self.stream_timeout = stream_timeout
        self.stream_body = stream_body
        self.max_body = max_body
        self._bodies = {}     # connection id -> its _BodyStream (loop thread)
        # Requests wait here for a worker thread: (connection id, environ,
        # _Response), None to stop one.
        self._jobs = queue.SimpleQueue()
        self._workers = []
        self._nworkers = workers
        # The server's handler has no use for MG_EV_POLL: an idle
        # keep-alive connection then costs nothing per poll.
        self._manager = Manager(self._handle, enable_wakeup=True, error_handler=error_handler,
                                poll_events=False)
        self._queues = {}  # connection id -> deque of _Response, in request order
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._url_scheme = "http"
        self._environs = None  # the _WsgiEnvironBuilder, made by listen()

    @property
    def manager(self):
        return self._manager

    def listen(self, url="http://127.0.0.1:8000", **listen_kwargs):
        """Starts listening; returns the listening Connection.  listen_kwargs
        go to Manager.listen (fd=: a listening socket to serve)."""
        if url.lower().startswith("https://"):
            self._url_scheme = "https"
        # made now: the scheme and multiprocess are known
        self._environs = self._environ_builder()
        # Long Content-Length bodies are streamed, so the C layer's
        # whole-body limit is lifted; max_body bounds chunked ones.
        return self._manager.listen(url, http=True, http_max_body=1 << 62, **listen_kwargs)

    def run(self, poll_ms=100):
        """Serves until SIGINT/SIGTERM (Manager.run) or close() from another thread."""
        try:
            while not self._stop.is_set():
                self._manager.poll(poll_ms)
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self):
        """Stops serving and waits for the workers (idempotent)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()  # workers waiting for a slow client give up
        for _ in self._workers:
            self._jobs.put(None)
        for t in self._workers:
            t.join()
        self._workers.clear()
        if not self._manager.closed:
            self._manager.close()

    # ----------------------------------------------------------- loop thread
    def _handle(self, conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            self._start(conn, self._environ(conn, data))
        elif ev == MG_EV_WAKEUP or (ev == MG_EV_WRITE and self._queues.get(conn.id)):
            # (a WRITE matters only while responses wait: most go out whole)
            if conn.id in self._bodies:
                self._feed(conn)
            self._write_ready(conn)
        elif ev == MG_EV_READ:
            if conn.id in self._bodies:
                self._feed(conn)
        elif ev == MG_EV_HTTP_HDRS:
            length = data.header("Content-Length")
            if (data.header("Transfer-Encoding") is not None if length is None else
                    length.isdigit() and int(length) > self.stream_body):
                n = conn.http_body_stream(data, self.max_body)
                if n is not None:
                    body = self._bodies[conn.id] = _BodyStream(self, conn.id, n)
                    environ = self._environ(conn, data, body)
                    self._start(conn, environ).body = body
        elif ev == MG_EV_CLOSE:
            body = self._bodies.pop(conn.id, None)
            if body is not None:
                with self._lock:
                    body.gone = True
                    self._lock.notify_all()
            for resp in self._queues.pop(conn.id, ()):
                with self._lock:
                    if resp.file is not None:
                        os.close(resp.file[0])
                        resp.file = None

    def _start(self, conn, environ):
        resp = _Response(self, conn.id)
        q = self._queues.get(conn.id)
        if q is None:
            q = self._queues[conn.id] = collections.deque()
        q.append(resp)
        if len(self._workers) < self._nworkers and not self._stop.is_set():
            t = threading.Thread(target=self._work, name="wsgi-%d" % len(self._workers),
                                 daemon=True)
            t.start()
            self._workers.append(t)
        self._jobs.put((conn.id, environ, resp))
        return resp

    def _feed(self, conn):
        """Takes what a worker waits for of a streamed body from the
        connection (up to BODY_WINDOW buffered); what is not asked for stays
        in the receive buffer, where it pauses reading."""
        body = self._bodies[conn.id]
        with self._lock:
            if not body.wanted:
                return
            while body.left and body.buffered < BODY_WINDOW:
                piece = conn.http_body_read(BODY_WINDOW - body.buffered)
                body.left = conn.http_body_left() or 0
                if not piece:
                    break
                body.pieces.append(piece)
                body.buffered += len(piece)
            if body.pieces or not body.left:
                body.wanted = False
                self._lock.notify_all()

    def _environ_builder(self):
        return _WsgiEnvironBuilder({
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self._url_scheme,
            "wsgi.input_terminated": True,  # wsgi.input ends with the body, chunked or not
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }, io.BytesIO)

    def _environ(self, conn, msg, stream=None):
        """The environ (built in C): the message's whole body as wsgi.input,
        or the streamed body."""
        if stream is None:
            return self._environs.environ(conn, msg)
        return self._environs.environ(conn, msg, io.BufferedReader(stream, 65536),
                                      str(stream.left) if stream.left >= 0 else "")

    def _write_ready(self, conn):
        """Writes what the responses at the head of conn's queue have ready."""
        queue = self._queues.get(conn.id)
        while queue:
            resp = queue[0]
            with self._lock:
                if not resp.streaming and not resp.done:
                    return  # head not decided yet: this response is still being made
                parts = []
                while resp.parts and (not resp.streaming or conn.send_len < STREAM_WINDOW):
                    parts.append(resp.parts.popleft())
                    resp.buffered -= len(parts[-1])
                done = resp.done and not resp.parts
                self._lock.notify_all()
            if resp.aborted:
                conn.close()  # the client must not take a cut body for a whole one
                return
            if resp.file is not None:  # a real file: its bytes go out with sendfile
                fd, offset, length = resp.file
                resp.file = None
                try:
                    block = "".join("%s: %s\r\n" % kv for kv in resp.headers)
                    conn._reply_file(resp.status, block, fd, offset, length)
                finally:
                    os.close(fd)
            elif not resp.streaming:  # a whole response: one write with Content-Length
                # a list, not a dict: a repeated name (Set-Cookie) stays repeated
                conn.reply(resp.status, b"".join(parts), resp.headers)
            else:
                if resp.status is not None:  # the head of a chunked response
                    headers = list(resp.headers) + [("Transfer-Encoding", "chunked")]
                    conn.reply(resp.status, b"", headers)
                    resp.status = None
                for p in parts:
                    if p:
                        conn.http_chunk(p)
                if not done:
                    return
                conn.http_chunk(b"")
            queue.popleft()
            if resp.body is not None:  # a streamed request: HTTP again (or close)
                self._bodies.pop(conn.id, None)
                conn.http_body_end()

    # --------------------------------------------------------- worker threads
    def _work(self):
        jobs, run = self._jobs, self._run_app
        while True:
            job = jobs.get()
            if job is None or self._stop.is_set():
                return
            run(*job)
            job = None  # the environ and its input go now, not at the next request

    def _run_app(self, conn_id, environ, resp):
        start = _WsgiStart(resp)
        result = None
        try:
            result = self.app(environ, start)
            if type(result) is list and not resp.streaming:  # the common case, first
                self._finish(conn_id, resp, start, [b"".join(result)])
                return
            real = _real_file(result) if start.status is not None and not resp.streaming else None
            if real is not None:
                with self._lock:
                    resp.file = real
                self._finish(conn_id, resp, start, [])
            elif isinstance(result, (list, tuple)) and not resp.streaming:
                body = b"".join(result)
                self._finish(conn_id, resp, start, [body])
            else:
                for piece in result:
                    if not resp.streaming:
                        self._begin_stream(conn_id, resp, start)
                    self._push(conn_id, resp, piece)
                if not resp.streaming:
                    self._finish(conn_id, resp, start, [])
                else:
                    self._finish(conn_id, resp, None, [])
        except Exception as exc:  # the application failed: 500, report it
            self._report(exc)
            if not resp.streaming:
                self._finish(conn_id, resp, _FAILED, [b"Internal Server Error"])
            else:
                resp.aborted = True
                self._finish(conn_id, resp, None, [])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    self._report(exc)

    def _begin_stream(self, conn_id, resp, start):
        if start.status is None:
            raise RuntimeError("the application produced a body before start_response()")
        with self._lock:
            resp.status, resp.headers = start.status, start.headers
            resp.streaming = True

    def _push(self, conn_id, resp, data):
        if not data:
            return
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("WSGI body pieces must be bytes, not %s" % type(data).__name__)
        with self._lock:
            resp.parts.append(bytes(data))
            resp.buffered += len(data)
            if resp.streaming and resp.buffered > STREAM_WINDOW:
                self._notify(conn_id)
                if not self._lock.wait_for(
                        lambda: resp.buffered <= STREAM_WINDOW or self._stop.is_set(),
                        self.stream_timeout):
                    raise TimeoutError("the client stopped reading the response")
        self._notify(conn_id)

    def _finish(self, conn_id, resp, start, parts):
        """The worker is done with resp: start (a _WsgiStart, or _FAILED) gives
        its head unless it is streaming (None); parts are its last bytes."""
        with self._lock:
            if start is not None:
                if start.status is None:
                    start = _FAILED
                    parts = [b"start_response() was never called"]
                resp.status, resp.headers = start.status, start.headers
            for p in parts:
                if p:
                    resp.parts.append(p)
                    resp.buffered += len(p)
            resp.done = True
        self._notify(conn_id)

    def _notify(self, conn_id):
        if not self._stop.is_set():
            self._manager.wakeup(conn_id, b"")

    def _report(self, exc):
        report(self.error_handler, exc)


def serve(app, url="http://127.0.0.1:8000", workers=4, error_handler=None,
          stream_timeout=5.0, poll_ms=100, *, processes=None, **process_options):
    """Serves app on url until SIGINT/SIGTERM.  workers: threads per process.
    processes=N (N > 1): N worker processes under a supervisor (SIGHUP
    reloads; process_options: drain_timeout, drain_idle_ms; see _workers)."""
    if processes is not None and processes > 1:
        from ._workers import serve_wsgi
        serve_wsgi(app, url, processes, threads=workers, error_handler=error_handler,
                   stream_timeout=stream_timeout, poll_ms=poll_ms, **process_options)
        return
    if process_options:
        raise TypeError("%s: options of worker processes (processes > 1)"
                        % ", ".join(sorted(process_options)))
    server = WSGIServer(app, workers=workers, error_handler=error_handler,
                        stream_timeout=stream_timeout)
    server.listen(url)
    import signal
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *a: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            server.manager.poll(poll_ms)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        server.close()
