"""Serve an ASGI 3.0 application (Starlette, FastAPI, ...) on cymongoose.

The manager runs inside the asyncio loop (:class:`~cymongoose.aio.AsyncManager`),
so the event handler and the application share one thread.  The handler is
in C (``_AsgiCore``): it builds the scope, hands the app the receive()/send()
of a C channel (awaitables that complete at once when they can), and steps
the request's coroutine right in the event callback, with the connection's
host task as current_task().  A coroutine waiting in receive()/send() is
parked in C and stepped again by the event that it waits for; one that
awaits anything else becomes its host task's (an asyncio task) to the end.

    from cymongoose.asgi import serve
    serve(app, "http://127.0.0.1:8000")

HTTP: a body declared longer than ``stream_body`` is streamed to the app as
``http.request`` messages with ``more_body``, read from the connection as the
app asks (reading pauses while it does not); shorter ones come whole, as one
message; chunked ones are streamed too (``max_body`` bounds them: 413 and close).
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
import signal

from ._report import report
from ._mongoose import _AsgiCore, _AsgiScopeBuilder
from .aio import AsyncManager

__all__ = ["ASGIServer", "ClientDisconnected", "serve"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

# send() of a streamed body waits while more than this is queued.
STREAM_WINDOW = 1 << 20

# Request bodies declared longer than this are streamed to the app
# (http.request messages with more_body, read as the app asks); shorter
# ones come whole in one message.
STREAM_BODY = 64 * 1024

# A streamed body (chunked, or longer than stream_body) is refused with 413
# and the connection closed once it grows beyond this.
MAX_BODY = 16 << 20

UNLIMITED_BODY = 1 << 62

# A wake-up of the server (its epoll descriptor readable) polls the manager
# again while the previous turn brought input, up to this many turns: a busy
# server takes the requests that arrived meanwhile without another asyncio
# iteration and wait for each; other tasks run again after at most this many.
POLL_TURNS = 8


class ClientDisconnected(OSError):
    """Raised by send() once the client has gone (ASGI spec 2.4 behaviour):
    an app that streams forever without calling receive() still stops."""


_START = object()  # _Resume: the coroutine has not been stepped by the task yet


async def _host(inbox):
    """The body of a host task: idle (awaiting inbox) while the core steps
    the connection's coroutines itself; given one that awaits something
    else, runs it to its end and tells its channel."""
    ch, ctx, coro, pending, exc = await inbox
    try:
        await _Resume(ctx, coro, pending, exc)
    except BaseException as e:  # reported (or re-raised) by the channel
        ch._finish(e)
    else:
        ch._finish(None)


class _Resume:
    """Continues a coroutine the core stepped until it yielded pending (a
    future, or None for a bare yield; _START: not stepped yet, or exc to
    throw first), inside the task awaiting this: the Task waits on what the
    coroutine yielded, exactly as if it had run in it from the start.
    Every step runs in the request's own context."""

    __slots__ = ("ctx", "coro", "pending", "exc")

    def __init__(self, ctx, coro, pending, exc=None):
        self.ctx, self.coro, self.pending, self.exc = ctx, coro, pending, exc

    def __await__(self):
        ctx, coro, pending, exc = self.ctx, self.coro, self.pending, self.exc
        self.coro = self.pending = self.exc = None
        if pending is _START:
            try:
                pending = ctx.run(coro.throw, exc) if exc is not None else ctx.run(coro.send, None)
            except StopIteration as stop:
                return stop.value
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
        self._state = {}        # lifespan state, copied into every scope
        # The event handler, in C: scopes, receive/send, stepping the app.
        self._core = _AsgiCore(app, _AsgiScopeBuilder(ASGI_VERSION), self, ClientDisconnected,
                               tls=tls, state=self._state, stream_window=stream_window,
                               stream_body=stream_body, max_body=max_body)
        # The server's handler has no use for MG_EV_POLL: an idle
        # keep-alive connection then costs nothing per poll.
        self._amgr = _ServerManager(self._core, poll_interval=poll_interval,
                                    error_handler=error_handler, poll_events=False)
        self._listeners = []
        self._tasks = set()     # host tasks running a coroutine handed over to them
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
            self._core.start(asyncio.get_running_loop())
            self._running = True
            try:
                await self._startup()
            except BaseException:
                await self._amgr.__aexit__(None, None, None)
                self._running = False
                raise
        try:
            # Long and chunked bodies are streamed (paced by the app), so the
            # C layer's whole-body limit is lifted; max_body bounds each
            # streamed body as it arrives (413, then close).
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
        for ch in self._core.channels():
            ch.shutdown()  # an open WebSocket gets 1001
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        while self._core.channels() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        late = [t for t in self._tasks if not t.done()]
        for t in late:
            t.cancel()
        for ch in self._core.channels():
            ch.cancel()  # a coroutine waiting in receive()/send()
        late = [t for t in self._tasks if not t.done()]
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        try:
            await self._shutdown()
        finally:
            for conn in list(self.manager.connections):
                conn.close()
            await self._amgr.__aexit__(None, None, None)
            self._running = False

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

    # --------------------------------------------- hooks of the C core
    def _make_host(self):
        """A new host task for a connection, idle until handed a coroutine:
        (task, the future it awaits)."""
        loop = self._amgr._loop
        inbox = loop.create_future()
        return loop.create_task(_host(inbox)), inbox

    def _handoff(self, host, inbox, ch, ctx, coro, pending):
        """ch's coroutine awaits pending (not one of our receive()/send()):
        its host task runs it from now on."""
        if inbox.done() or host.done() or host.cancelling():  # taken, or going away
            return self._spawn(ch, ctx, coro, None, pending)
        inbox.set_result((ch, ctx, coro, pending, None))
        self._tasks.add(host)
        host.add_done_callback(self._tasks.discard)

    def _spawn(self, ch, ctx, coro, exc, pending=_START):
        """ch's coroutine runs in a task of its own (the core could not make
        its host current: it was called from inside a task)."""
        loop = self._amgr._loop
        inbox = loop.create_future()
        inbox.set_result((ch, ctx, coro, pending, exc))
        task = loop.create_task(_host(inbox))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _report(self, exc):
        report(self.error_handler, exc)


class _ServerManager(AsyncManager):
    """The AsyncManager of an ASGIServer: a wake-up runs up to POLL_TURNS
    turns of the manager, each one only if the previous one brought input
    (the core counts the READ, ACCEPT and CLOSE events)."""

    def __init__(self, core, **kwargs):
        super().__init__(core, **kwargs)
        self._core = core

    def _poll(self):
        self._poll_soon = False
        mgr, core = self._manager, self._core
        try:
            for _ in range(POLL_TURNS):
                if mgr is None or mgr.closed:
                    return
                inputs = core.inputs
                mgr.poll(0)
                if core.inputs == inputs:
                    return
                mgr = self._manager  # a handler may have closed the server
        except Exception as e:  # the loop must keep running
            self._report(e)


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
