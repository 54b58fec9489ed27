"""asyncio integration: run a Manager inside the running asyncio event loop.

The original package polled the manager in a thread under a lock.  Here the
manager lives in the asyncio thread: its epoll descriptor is registered with
``loop.add_reader`` so socket activity is handled as soon as it happens,
output queued from coroutines triggers a poll on the next loop iteration
(``Manager.output_hook``), and a periodic tick every ``poll_interval`` ms runs
the manager's timers.  Handlers therefore run in the asyncio thread and may
use asyncio objects directly.

    async def main():
        async with AsyncManager(handler) as amgr:
            amgr.listen("http://127.0.0.1:8000")
            await asyncio.sleep(3600)
"""
import asyncio
import inspect

from ._report import report
from ._mongoose import Manager

__all__ = ["AsyncManager"]


class AsyncManager:
    """An async context manager that drives a :class:`Manager` from asyncio.

    handler, error_handler: as for Manager.  poll_interval: milliseconds
    between timer ticks.  shutdown_timeout: seconds to wait for coroutines
    started with schedule() when the context exits, before cancelling them.
    enable_wakeup: accepted for programs written for Manager's arguments;
    wakeup() is always on here.  Other keywords (dns=...) go to Manager.

    Before ``async with`` and after it, the methods and the ``manager``
    property raise RuntimeError("AsyncManager is not started"), as in the
    original package.
    """

    def __init__(self, handler=None, poll_interval=100, error_handler=None,
                 shutdown_timeout=30, *, enable_wakeup=True, **manager_kwargs):
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._handler = handler
        self._poll_interval = poll_interval
        self._error_handler = error_handler
        self._shutdown_timeout = shutdown_timeout
        self._manager_kwargs = manager_kwargs
        self._manager = None
        self._loop = None
        self._tick_handle = None
        self._poll_soon = False
        self._tasks = set()

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self):
        if self._manager is not None:
            raise RuntimeError("AsyncManager is already running")
        self._loop = asyncio.get_running_loop()
        self._manager = Manager(self._handler, enable_wakeup=True,
                                error_handler=self._error_handler, **self._manager_kwargs)
        self._manager.output_hook = self._request_poll
        self._loop.add_reader(self._manager.fileno(), self._poll)
        self._tick_handle = self._loop.call_later(self._poll_interval / 1000, self._tick)
        return self

    async def __aexit__(self, exc_type, exc, tb):
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=self._shutdown_timeout)
            for t in not_done:
                t.cancel()
            if not_done:
                await asyncio.gather(*not_done, return_exceptions=True)
        self._stop()
        return False

    def _stop(self):
        if self._manager is None:
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if not self._manager.closed:
            self._loop.remove_reader(self._manager.fileno())
            self._manager.output_hook = None
            self._manager.close()
        self._manager = None

    @property
    def manager(self):
        """The underlying Manager; RuntimeError outside the context."""
        return self._require()

    @property
    def running(self):
        """True inside the context."""
        return self._manager is not None and not self._manager.closed

    # ------------------------------------------------------------- polling
    def _poll(self):
        self._poll_soon = False
        if self._manager is None or self._manager.closed:
            return
        try:
            self._manager.poll(0)
        except Exception as e:  # the loop must keep running
            self._report(e)

    def _request_poll(self):
        if not self._poll_soon and self._loop is not None:
            self._poll_soon = True
            self._loop.call_soon(self._poll)

    def _tick(self):
        self._poll()
        if self._manager is not None:
            self._tick_handle = self._loop.call_later(self._poll_interval / 1000, self._tick)

    def _report(self, exc):
        report(self._error_handler, exc)

    def _require(self):
        if self._manager is None:
            raise RuntimeError("AsyncManager is not started (use 'async with')")
        return self._manager

    # ----------------------------------------------------- manager methods
    def listen(self, url, handler=None, **kwargs):
        return self._require().listen(url, handler, **kwargs)

    def connect(self, url, handler=None, **kwargs):
        conn = self._require().connect(url, handler, **kwargs)
        self._request_poll()
        return conn

    def ws_connect(self, url, handler=None, **kwargs):
        conn = self._require().ws_connect(url, handler, **kwargs)
        self._request_poll()
        return conn

    def mqtt_connect(self, url, handler=None, **kwargs):
        conn = self._require().mqtt_connect(url, handler, **kwargs)
        self._request_poll()
        return conn

    def mqtt_listen(self, url, handler=None, **kwargs):
        return self._require().mqtt_listen(url, handler, **kwargs)

    def mqtt_broker(self, url=None, **options):
        """Manager.mqtt_broker() on the running manager: an MqttBroker served by
        this asyncio loop (closed with the manager when the context exits)."""
        broker = self._require().mqtt_broker(url, **options)
        self._request_poll()
        return broker

    def sntp_connect(self, url, handler=None):
        conn = self._require().sntp_connect(url, handler)
        self._request_poll()
        return conn

    def timer_add(self, ms, callback, *, repeat=False, run_now=False):
        timer = self._require().timer_add(ms, callback, repeat=repeat, run_now=run_now)
        self._request_poll()
        return timer

    def wakeup(self, connection_id, data=b""):
        """Thread-safe, like Manager.wakeup(); RuntimeError outside the context."""
        mgr = self._manager
        if mgr is None:
            raise RuntimeError("AsyncManager is not started (use 'async with')")
        return mgr.wakeup(connection_id, data)

    def schedule(self, coro_or_callable):
        """Runs a coroutine as a task of this manager (awaited on exit, up to
        shutdown_timeout), or calls a plain callable on the next loop turn.
        Returns the task, or the asyncio.Handle of the call."""
        self._require()
        if inspect.isawaitable(coro_or_callable):
            task = asyncio.ensure_future(coro_or_callable)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            return task
        if callable(coro_or_callable):
            return self._loop.call_soon(self._call_safely, coro_or_callable)
        raise TypeError("schedule() takes a coroutine or a callable")

    def _call_safely(self, fn):
        try:
            fn()
        except Exception as e:
            self._report(e)

    def _task_done(self, task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._report(task.exception())
