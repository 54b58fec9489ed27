"""Helpers of the core tests: poll a manager until something happens."""
import time

# Generous: tests never assert durations, this only stops a hung test.
DEADLINE_S = 20.0


def poll_until(mgr, cond, timeout=DEADLINE_S, step_ms=10):
    """Polls mgr until cond() is true; returns cond() (False on timeout)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return cond()
        mgr.poll(step_ms)
    return True


def poll_for(mgr, seconds, step_ms=10):
    """Polls mgr for about this long (to let unwanted events show up)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        mgr.poll(step_ms)


class EventLog:
    """A handler recording (conn, ev, data) of every event but POLL."""

    def __init__(self, on_event=None):
        self.events = []
        self.on_event = on_event

    def __call__(self, conn, ev, data):
        from cymongoose import MG_EV_POLL
        if ev != MG_EV_POLL:
            self.events.append((conn, ev, data))
        if self.on_event is not None:
            self.on_event(conn, ev, data)

    def of(self, conn):
        return [ev for c, ev, _ in self.events if c is conn]

    def data(self, ev):
        return [d for _, e, d in self.events if e == ev]

    def conns(self, ev):
        return [c for c, e, _ in self.events if e == ev]
