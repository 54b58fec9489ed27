"""Serve an ASGI 3.0 application (Starlette, FastAPI, ...) on cymongoose.

The manager runs inside the asyncio loop (:class:`~cymongoose.aio.AsyncManager`),
so the event handler and the application share one thread.  A request's
coroutine is stepped right in the event callback while it only awaits our
receive()/send() (which complete at once when they can), with the
connection's host task as current_task(); it becomes an asyncio task (that
host) only when it awaits a real future.  The scope is built in C.

    from cymongoose.asgi import serve
    serve(app, "http://127.0.0.1:8000")

HTTP: a body declared longer than ``stream_body`` is streamed to the app as
``http.request`` messages with ``more_body``, read from the connection as the
app asks (reading pauses while it does not); shorter ones come whole, as one
message; chunked ones are read whole (``max_body`` applies).
A response whose first ``http.response.body`` has no ``more_body`` goes out
as one write with Content-Length; otherwise it is streamed with chunked
encoding, and ``send()`` waits while more than ``stream_window`` bytes are
queued for the client, so a slow reader slows the app instead of filling
memory.  Pipelined requests are answered in order: the C server hands over
the next one only when the current response is complete.

WebSocket: the upgrade request is kept (its head) until the app answers
``websocket.connect``; ``websocket.accept`` performs the handshake then.
"""
import asyncio
import collections
import contextvars
import signal
import urllib.parse
from asyncio.tasks import _enter_task, _leave_task

from ._report import report
from ._mongoose import (_AsgiScopeBuilder, MG_EV_ACCEPT, MG_EV_CLOSE, MG_EV_HTTP_HDRS,
                        MG_EV_HTTP_MSG, MG_EV_READ, MG_EV_WRITE, MG_EV_WS_CTL,
                        MG_EV_WS_MSG,
                        WEBSOCKET_OP_BINARY, WEBSOCKET_OP_CLOSE, WEBSOCKET_OP_TEXT)
from .aio import AsyncManager

__all__ = ["ASGIServer", "ClientDisconnected", "serve"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

# send() of a streamed body waits while more than this is queued.
STREAM_WINDOW = 1 << 20

# Request bodies declared longer than this are streamed to the app
# (http.request messages with more_body, read as the app asks); shorter
# ones come whole in one message.
STREAM_BODY = 64 * 1024

# Bodies that come whole (chunked ones, which are not streamed) are refused
# with 413 beyond this.
MAX_BODY = 16 << 20

UNLIMITED_BODY = 1 << 62

# At most this much of a streamed body per http.request message.
BODY_PIECE = 256 * 1024

# Hop-by-hop fields are the server's business; Content-Length is written
# by the C server for whole responses and must be absent from chunked ones.
_SERVER_FIELDS = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
                  b"upgrade", b"content-length"}


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone (ASGI spec 2.4 behaviour):
    an app that streams forever without calling receive() still stops."""


def _wire(s):
    """A str the C layer decoded with surrogateescape, back to its bytes."""
    return s.encode("utf-8", "surrogateescape")


def _addr(a):
    return [a[0], a[1]] if a else None


def _has_token(value, token):
    return token in (t.strip().lower() for t in (value or "").split(","))


def _request_head(msg):
    """The request head rebuilt from an HttpMessage, for a later ws_upgrade()."""
    target = msg.uri + ("?" + msg.query if msg.query else "")
    lines = ["%s %s %s" % (msg.method, target, msg.proto or "HTTP/1.1")]
    lines += ["%s: %s" % (n, v) for n, v in msg.headers()]
    return _wire("\r\n".join(lines) + "\r\n\r\n")


class _Channel:
    """One ASGI connection (an HTTP request or a WebSocket): the queue
    receive() reads and the state send() checks.  Lives in the loop thread."""

    def __init__(self, server, conn):
        self.server = server
        self.conn = conn
        self.inbox = collections.deque()  # messages receive() returns, in order
        self.waiter = None  # the future a receive() with an empty inbox awaits
        self.disconnected = False

    def wake(self):
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, message):
        self.inbox.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self):
        """The next message; waits (on a real future: the app then runs in
        its host task) only when none is there."""
        inbox = self.inbox
        while not inbox:
            self.waiter = waiter = asyncio.get_running_loop().create_future()
            await waiter
        return inbox.popleft()

    def disconnect(self):
        self.disconnected = True
        self.put(self.disconnect_message())

    async def wait_writable(self):
        """Backpressure: returns when the send buffer is below the window."""
        state = self.server._conns.get(self.conn.id)
        while (not self.disconnected and state is not None and
               self.conn.send_len > self.server.stream_window):
            state.writable.clear()
            try:  # MG_EV_WRITE wakes us; the timeout is a safety net
                await asyncio.wait_for(state.writable.wait(), 0.5)
            except asyncio.TimeoutError:
                pass


class _HTTPChannel(_Channel):
    def __init__(self, server, conn, body, state=None):
        super().__init__(server, conn)
        # state: the connection's, when the body is streamed (body is None):
        # receive() then reads it from the connection as the app asks.
        self.state = state
        if state is None:
            self.inbox.append({"type": "http.request", "body": body, "more_body": False})
        self.streamed = state is not None  # http_body_end() is still owed
        self.start = None      # the http.response.start message, until written
        self.started = False   # the head has been written
        self.complete = False  # the whole response has been written
        self.discarding = False  # a 204/304 response: more body messages are dropped

    def disconnect_message(self):
        return {"type": "http.disconnect"}

    async def receive(self):
        if self.state is not None:
            return await self.read_body()
        if self.complete and not self.inbox:
            return {"type": "http.disconnect"}  # as uvicorn: nothing more will come
        return await self.get()

    async def read_body(self):
        """The next piece of a streamed body: what has arrived (up to
        BODY_PIECE), waiting for a READ event when nothing has.  What the app
        does not ask for stays unread, so reading pauses at recv_limit."""
        conn, state = self.conn, self.state
        while not self.disconnected:
            data = conn.http_body_read(BODY_PIECE)
            left = conn.http_body_left()
            if data or not left:
                if not left:
                    self.state = None  # the body is complete
                return {"type": "http.request", "body": data, "more_body": bool(left)}
            state.reader = self
            self.waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if state.reader is self:
                    state.reader = None
        return await self.get()  # the http.disconnect put there

    def done(self):
        """The response is complete: a streamed request hands its connection
        back to the HTTP server (or closes it if the body was not all read)."""
        self.complete = True
        if self.state is not None or self.streamed:
            self.streamed = False
            self.state = None
            if not self.disconnected:
                self.conn.http_body_end()

    async def send(self, message):
        kind = message.get("type")
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        if kind == "http.response.start":
            if self.start is not None or self.started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 999:
                raise ValueError("invalid status %r" % (status,))
            headers = []
            for name, value in message.get("headers", ()):
                name, value = bytes(name), bytes(value)
                if name.lower() not in _SERVER_FIELDS:
                    headers.append((name, value))
            self.start = (status, headers)
        elif kind == "http.response.body":
            if self.start is None and not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if self.discarding:
                self.discarding = more
                return
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            conn = self.conn
            if not self.started:
                # A head the C layer refuses (a bad header) raises before
                # anything is sent: the app's error then still gets a 500.
                status, headers = self.start
                if status in (204, 304):  # never a body, never chunked
                    conn.reply(status, b"", headers)
                    self.discarding = more
                    if self.streamed:
                        self.done()
                    else:
                        self.complete = True
                elif not more:
                    conn.reply(status, body, headers)
                    if self.streamed:
                        self.done()
                    else:
                        self.complete = True
                else:
                    conn.reply(status, b"", headers + [(b"Transfer-Encoding", b"chunked")])
                self.start, self.started = None, True
                if self.complete:
                    return
            if body:
                conn.http_chunk(body)
            if not more:
                conn.http_chunk(b"")
                self.done()
            else:
                await self.wait_writable()
        else:
            raise ValueError("unexpected ASGI message %r on an HTTP connection" % (kind,))

    def finish(self, exc):
        """After the app returned (exc None) or failed."""
        if self.complete or self.disconnected:
            return
        if not self.started:
            self.conn.reply(500, b"Internal Server Error\n", [("Content-Type", "text/plain")])
            self.done()
        else:
            self.conn.drain()  # what was sent, then close: a cut body never passes for a whole one


class _WebSocketChannel(_Channel):
    def __init__(self, server, conn, head):
        super().__init__(server, conn)
        self.head = head         # the upgrade request, until accepted
        self.accepted = False
        self.closed = False      # we sent websocket.close (or refused)
        self.close_code = 1006   # the client's close code, once it sent one
        self.close_reason = ""
        self.inbox.append({"type": "websocket.connect"})

    def disconnect_message(self):
        return {"type": "websocket.disconnect", "code": self.close_code,
                "reason": self.close_reason}

    async def receive(self):
        return await self.get()

    async def send(self, message):
        kind = message.get("type")
        if self.disconnected:
            raise ClientDisconnected("the client has disconnected")
        if self.closed:
            raise RuntimeError("%s after websocket.close" % kind)
        conn = self.conn
        if kind == "websocket.accept":
            if self.accepted:
                raise RuntimeError("websocket.accept sent twice")
            extra = [(n.decode("latin-1"), v.decode("latin-1"))
                     for n, v in message.get("headers", ())]
            if message.get("subprotocol"):
                extra.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            head, self.head = self.head, None
            if not conn.ws_upgrade(head, extra or None):
                # The handshake was invalid: the C layer answered 400.
                self.closed = True
                self.disconnect()
                return
            self.accepted = True
        elif kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            if message.get("bytes") is not None:
                conn.ws_send(bytes(message["bytes"]), WEBSOCKET_OP_BINARY)
            elif message.get("text") is not None:
                conn.ws_send(message["text"], WEBSOCKET_OP_TEXT)
            else:
                raise ValueError("websocket.send needs 'bytes' or 'text'")
            await self.wait_writable()
        elif kind == "websocket.close":
            if not self.accepted:
                self.closed = True
                self.head = None
                conn.reply(403, b"Forbidden\n")  # refused before the handshake
                self.put(self.disconnect_message())
            else:
                code = int(message.get("code", 1000))
                if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
                    raise ValueError("%d is not a close code an endpoint may send" % code)
                self.closed = True
                conn.ws_close(code, message.get("reason") or "")
        else:
            raise ValueError("unexpected ASGI message %r on a WebSocket" % (kind,))

    def finish(self, exc):
        if self.disconnected or self.closed:
            return
        self.closed = True
        if not self.accepted:
            self.conn.reply(500 if exc is not None else 403, b"")
        else:
            self.conn.ws_close(1011 if exc is not None else 1000, "")


class _ConnState:
    """What the server keeps per TCP connection.

    host: an asyncio Task that is current_task() while we step a request's
    coroutine ourselves (so anyio, sniffio and Task-bound cancel scopes see a
    task, the same one before and after the first suspension), and that
    drives the coroutine from the first time it awaits a real future.  One
    serves every request that completes without suspending; a new one is
    made after one has been handed a coroutine."""

    __slots__ = ("channels", "writable", "host", "host_inbox", "reader", "buffering")

    def __init__(self):
        self.channels = set()  # channels whose app task still runs
        self.writable = asyncio.Event()
        self.host = None
        self.host_inbox = None  # the future the idle host awaits: (ctx, coro, pending)
        self.reader = None      # the channel waiting for more of a streamed body
        self.buffering = False  # a chunked body is being buffered (max_body applies)

    def drop_host(self):
        host, self.host = self.host, None
        if host is not None:
            host.cancel()


async def _host(inbox):
    ctx, coro, pending = await inbox
    return await _Resume(ctx, coro, pending)


class _Resume:
    """Continues a coroutine we stepped until it yielded pending (a future,
    or None for a bare yield), inside the task awaiting this: the Task waits
    on what the coroutine yielded, exactly as if it had run in it from the
    start.  Every step runs in the request's own context."""

    __slots__ = ("ctx", "coro", "pending")

    def __init__(self, ctx, coro, pending):
        self.ctx, self.coro, self.pending = ctx, coro, pending

    def __await__(self):
        ctx, coro, pending = self.ctx, self.coro, self.pending
        self.coro = self.pending = None
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # e.g. the task was cancelled
                try:
                    pending = ctx.run(coro.throw, exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                pending = ctx.run(coro.send, sent)
            except StopIteration as stop:
                return stop.value


class ASGIServer:
    """Runs an ASGI 3.0 application on an AsyncManager.

    error_handler: called with exceptions of the application (else they are
    printed).  tls: a TlsOpts for "https://" listeners (TLS starts on every
    accepted connection).  lifespan: "auto" (tolerate apps without it), "on" (a failure
    to start is an error) or "off".  stream_window: bytes queued for a
    client beyond which send() waits.  shutdown_timeout: seconds stop()
    lets running requests finish before cancelling them.
    """

    def __init__(self, app, error_handler=None, *, tls=None, lifespan="auto",
                 stream_window=STREAM_WINDOW, shutdown_timeout=5.0, poll_interval=100,
                 stream_body=STREAM_BODY, max_body=MAX_BODY):
        if lifespan not in ("auto", "on", "off"):
            raise ValueError("lifespan must be 'auto', 'on' or 'off'")
        self.app = app
        self.error_handler = error_handler
        self.tls = tls
        self.lifespan = lifespan
        self.stream_window = stream_window
        self.stream_body = stream_body
        self.max_body = max_body
        self.shutdown_timeout = shutdown_timeout
        # The server's handler has no use for MG_EV_POLL: an idle
        # keep-alive connection then costs nothing per poll.
        self._amgr = AsyncManager(self._handle, poll_interval=poll_interval,
                                  error_handler=error_handler, poll_events=False)
        self._listeners = []
        self._conns = {}        # connection id -> _ConnState
        self._tasks = set()
        self._state = {}        # lifespan state, copied into every scope
        self._scopes = _AsgiScopeBuilder(ASGI_VERSION)
        self._lifespan = None   # the lifespan channel while the app supports it
        self._running = False

    @property
    def manager(self):
        """The underlying Manager (None when not started)."""
        return self._amgr._manager

    @property
    def async_manager(self):
        return self._amgr

    # ------------------------------------------------------------ lifecycle
    async def start(self, url="http://127.0.0.1:8000", **listen_kwargs):
        """Runs the lifespan startup, then listens on url.  Returns the
        listening Connection (its local_addr gives the port of ":0").
        listen_kwargs go to Manager.listen (http_max_body, http_max_head,
        http_header_timeout_ms, http_idle_timeout_ms).  Raises RuntimeError
        when the app reports lifespan.startup.failed, or listening fails
        (the server is then stopped again if nothing else listens)."""
        if not self._running:
            await self._amgr.__aenter__()
            self._running = True
            try:
                await self._startup()
            except BaseException:
                await self._amgr.__aexit__(None, None, None)
                self._running = False
                raise
        try:
            # Long Content-Length bodies are streamed (paced by the app), so
            # the C layer's whole-body limit is lifted; max_body still bounds
            # the chunked bodies it buffers (checked as they arrive).
            listen_kwargs.setdefault("http_max_body", UNLIMITED_BODY)
            lst = self._amgr.listen(url, http=True, **listen_kwargs)
        except BaseException:
            if not self._listeners:
                await self.stop()
            raise
        self._listeners.append(lst)
        return lst

    async def stop(self):
        """Stops listening, lets running requests finish (up to
        shutdown_timeout, then cancels them), closes WebSockets with 1001,
        runs the lifespan shutdown and closes the manager."""
        if not self._running:
            return
        for lst in self._listeners:
            lst.close()
        self._listeners = []
        for state in self._conns.values():
            for ch in list(state.channels):
                if isinstance(ch, _WebSocketChannel) and ch.accepted and not ch.closed:
                    ch.closed = True
                    ch.conn.ws_close(1001, "server shutdown")
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.shutdown_timeout)
            for t in late:
                t.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        try:
            await self._shutdown()
        finally:
            for conn in list(self.manager.connections):
                conn.close()
            await self._amgr.__aexit__(None, None, None)
            self._running = False
            for state in self._conns.values():
                state.drop_host()
            self._conns.clear()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.stop()
        return False

    # ------------------------------------------------------------ lifespan
    async def _startup(self):
        if self.lifespan == "off":
            return
        ch = _LifespanChannel()
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self._state}
        ch.task = asyncio.ensure_future(self._run_lifespan(scope, ch))
        ch.inbox.put_nowait({"type": "lifespan.startup"})
        reply = await ch.reply()
        if reply is None:  # the app returned or raised: no lifespan support
            if self.lifespan == "on":
                raise RuntimeError("the application does not support the lifespan protocol")
            return
        if reply["type"] == "lifespan.startup.failed":
            await asyncio.gather(ch.task, return_exceptions=True)
            raise RuntimeError("lifespan startup failed: %s" % reply.get("message", ""))
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError("unexpected lifespan message %r" % (reply["type"],))
        self._lifespan = ch

    async def _shutdown(self):
        ch, self._lifespan = self._lifespan, None
        if ch is None:
            return
        ch.inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            reply = await asyncio.wait_for(ch.reply(), self.shutdown_timeout)
        except asyncio.TimeoutError:
            reply = None
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            self._report(RuntimeError("lifespan shutdown failed: %s" % reply.get("message", "")))
        try:
            await asyncio.wait_for(ch.task, self.shutdown_timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass

    async def _run_lifespan(self, scope, ch):
        try:
            await self.app(scope, ch.inbox.get, ch.send)
        except BaseException as exc:
            if ch.spoke or self.lifespan == "on":  # a real failure, not "unsupported"
                if not isinstance(exc, asyncio.CancelledError):
                    self._report(exc)
        finally:
            ch.outbox.put_nowait(None)  # wakes a start()/stop() still waiting

    # ------------------------------------------------------- loop handler
    def _handle(self, conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            self._begin(conn, data)
        elif ev == MG_EV_READ:
            state = self._conns.get(conn.id)
            if state is not None:
                if state.reader is not None:
                    ch, state.reader = state.reader, None
                    ch.wake()
                elif state.buffering and conn.recv_len > self.max_body:
                    state.buffering = False  # a chunked body over the limit
                    conn.reply(413, b"Payload Too Large\n")
                    conn.drain()
        elif ev == MG_EV_HTTP_HDRS:
            length = data.header("Content-Length")
            if length is None:
                if data.header("Transfer-Encoding") is not None:
                    self._state_of(conn).buffering = True
            elif (length.isdigit() and int(length) > self.stream_body and
                    conn.http_body_stream(data) is not None):
                self._begin_streamed(conn, data)
        elif ev == MG_EV_WS_MSG:
            ch = self._websocket_of(conn)
            if ch is not None:
                if data.op == WEBSOCKET_OP_BINARY:
                    ch.put({"type": "websocket.receive", "bytes": data.data})
                else:
                    ch.put({"type": "websocket.receive", "text": data.text})
        elif ev == MG_EV_WS_CTL:
            ch = self._websocket_of(conn)
            if ch is not None and data.op == WEBSOCKET_OP_CLOSE:
                ch.close_code = data.close_code or 1005
                ch.close_reason = data.close_reason
        elif ev == MG_EV_ACCEPT:
            if self.tls is not None:
                conn.tls_init(self.tls)
        elif ev == MG_EV_WRITE:
            state = self._conns.get(conn.id)
            if state is not None:
                state.writable.set()
        elif ev == MG_EV_CLOSE:
            state = self._conns.pop(conn.id, None)
            if state is not None:
                state.drop_host()
                state.writable.set()
                for ch in state.channels:
                    ch.disconnect()

    def _websocket_of(self, conn):
        state = self._conns.get(conn.id)
        for ch in state.channels if state is not None else ():
            if isinstance(ch, _WebSocketChannel):
                return ch
        return None

    def _begin(self, conn, msg):
        upgrade = msg.header("Upgrade")
        if upgrade is not None and msg.method == "GET" and _has_token(upgrade, "websocket"):
            scope = self._websocket_scope(conn, msg)
            ch = _WebSocketChannel(self, conn, _request_head(msg))
        else:
            scope = self._scopes.http(msg, conn.is_tls, conn.remote_addr, conn.local_addr,
                                      self._state)
            ch = _HTTPChannel(self, conn, msg.body_bytes)
        state = self._state_of(conn)
        state.buffering = False
        state.channels.add(ch)
        self._step(state, self._run(scope, ch, state))

    def _state_of(self, conn):
        state = self._conns.get(conn.id)
        if state is None:
            state = self._conns[conn.id] = _ConnState()
        return state

    def _begin_streamed(self, conn, msg):
        scope = self._scopes.http(msg, conn.is_tls, conn.remote_addr, conn.local_addr,
                                  self._state)
        state = self._state_of(conn)
        ch = _HTTPChannel(self, conn, None, state)
        state.channels.add(ch)
        self._step(state, self._run(scope, ch, state))

    def _websocket_scope(self, conn, msg):
        tls = conn.is_tls
        raw_path = _wire(msg.uri)
        return {
            "type": "websocket",
            "asgi": dict(ASGI_VERSION),
            "http_version": (msg.proto or "HTTP/1.1")[5:] or "1.1",
            "scheme": "wss" if tls else "ws",
            "path": urllib.parse.unquote_to_bytes(raw_path).decode("utf-8", "replace"),
            "raw_path": raw_path,
            "query_string": _wire(msg.query),
            "root_path": "",
            "headers": [[_wire(n).lower(), _wire(v)] for n, v in msg.headers()],
            "client": _addr(conn.remote_addr),
            "server": _addr(conn.local_addr),
            "state": dict(self._state),
            "subprotocols": [p.strip() for p in
                             (msg.header("Sec-WebSocket-Protocol") or "").split(",")
                             if p.strip()],
        }

    def _step(self, state, coro):
        """Runs the request's coroutine right here until it completes or
        awaits something other than our receive()/send() completing at once;
        only then does it cost an asyncio task (the connection's host)."""
        loop = self._amgr._loop
        host = state.host
        if host is None:
            state.host_inbox = inbox = loop.create_future()
            state.host = host = loop.create_task(_host(inbox))
        ctx = contextvars.copy_context()  # a task per request would have its own
        try:
            _enter_task(loop, host)
        except RuntimeError:  # called from inside a task: schedule it as one
            task = loop.create_task(coro, context=ctx)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            pending = ctx.run(coro.send, None)
        except StopIteration:
            return
        finally:
            _leave_task(loop, host)
        state.host = None
        state.host_inbox.set_result((ctx, coro, pending))
        self._tasks.add(host)
        host.add_done_callback(self._tasks.discard)

    async def _run(self, scope, ch, state):
        exc = None
        try:
            await self.app(scope, ch.receive, ch.send)
        except ClientDisconnected:
            pass  # send() after the client left: the app just stops
        except asyncio.CancelledError:
            exc = RuntimeError("cancelled at shutdown")
        except Exception as e:
            exc = e
            self._report(e)
        finally:
            state.channels.discard(ch)
        try:
            ch.finish(exc)
        except Exception as e:  # the connection may be gone
            self._report(e)

    def _report(self, exc):
        report(self.error_handler, exc)


class _LifespanChannel:
    """The lifespan conversation: inbox is what the app receives, outbox
    what it sends (None once the app has returned)."""

    def __init__(self):
        self.inbox = asyncio.Queue()
        self.outbox = asyncio.Queue()
        self.spoke = False
        self.task = None

    async def send(self, message):
        if message.get("type") not in ("lifespan.startup.complete", "lifespan.startup.failed",
                                       "lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            raise ValueError("unexpected lifespan message %r" % (message.get("type"),))
        self.spoke = True
        self.outbox.put_nowait(message)

    async def reply(self):
        return await self.outbox.get()


def serve(app, url="http://127.0.0.1:8000", *, workers=None, **kwargs):
    """Serves app on url until SIGINT/SIGTERM.  kwargs go to ASGIServer.
    workers=N (N > 1): N worker processes under a supervisor (SIGHUP
    reloads; drain_timeout= and drain_idle_ms= go to it; see _workers)."""
    if workers is not None and workers > 1:
        from ._workers import serve_asgi
        serve_asgi(app, url, workers, **kwargs)
        return

    async def main():
        server = ASGIServer(app, **kwargs)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        try:
            await server.start(url)
            await stop.wait()
        finally:
            for s in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(s)
            await server.stop()

    asyncio.run(main())
