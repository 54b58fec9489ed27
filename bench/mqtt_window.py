"""The windowed publish loops bench/mqtt_ours.py and bench/mqtt_paho.py share,
so both clients measure exactly the same thing: argv parsing, the window
logic and the result line.  Only the client library differs.

Modes (argv: PORT QOS WINDOW SECONDS [MODE]):
  echo  the connection subscribes to its own topic and keeps WINDOW messages
        in flight through the broker (one more per message received): end to
        end, and the broker forwards every message (route + send).
  pub   no subscriber anywhere, so the broker only reads and drops (QoS 0) or
        reads and acknowledges (QoS 1): the client's own publish rate.
        QoS 1: WINDOW messages unacknowledged (the libraries' in-flight
        windows raised to WINDOW), one more per PUBACK (WINDOW 1:
        the publish -> PUBACK round trip).  QoS 0: batches of WINDOW messages,
        the last one QoS 1: its PUBACK says the broker read the whole batch
        (it handles a connection's packets in order); two batches
        outstanding, a new one as each is confirmed.
"""
import resource
import sys
import time

PAYLOAD = b"x" * 64
BATCHES = 2  # QoS 0 batches outstanding, so the broker never waits for the next


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class WindowLoad:
    """Reads the arguments from sys.argv.  echo: the client calls
    started(publish) once subscribed and received_one(publish, disconnect) on
    each message.  pub: started(publish) once connected and
    acked(publish, disconnect, mid) on each PUBACK; publish(topic, payload,
    qos) returns the packet id.  `done` turns true after the last one."""

    def __init__(self, topic):
        self.port, self.qos = int(sys.argv[1]), int(sys.argv[2])
        self.window, self.seconds = int(sys.argv[3]), float(sys.argv[4])
        self.mode = sys.argv[5] if len(sys.argv) > 5 else "echo"
        self.topic = topic
        self.sent = self.received = 0
        self.t0 = self.cpu0 = self.deadline = self.t1 = self.cpu1 = 0.0
        self.markers = set()
        # QoS 1/2 messages a library keeps unacknowledged: 20 (both
        # libraries' default on 3.1.1) end to end, where mosquitto's own
        # max_inflight_messages (20) bounds its side anyway; the whole window
        # when publishing only (mosquitto takes any number of QoS 1).
        self.library_window = max(20, self.window) if self.mode == "pub" else 20
        self.done = False

    def started(self, publish):
        self.t0, self.cpu0 = time.monotonic(), cpu()
        self.deadline = self.t0 + self.seconds
        if self.mode == "pub" and self.qos == 0:
            for _ in range(BATCHES):
                self._batch(publish)
            return
        for _ in range(self.window):
            publish(self.topic, PAYLOAD, self.qos)
        self.sent = self.window

    def _batch(self, publish):
        topic = self.topic
        for _ in range(self.window - 1):
            publish(topic, PAYLOAD, 0)
        self.markers.add(publish(topic, PAYLOAD, 1))
        self.sent += self.window

    def _finish(self, disconnect):
        self.t1, self.cpu1 = time.monotonic(), cpu()
        self.done = True
        disconnect()

    def received_one(self, publish, disconnect):
        self.received += 1
        if time.monotonic() < self.deadline:
            publish(self.topic, PAYLOAD, self.qos)
            self.sent += 1
        elif self.received == self.sent:
            self._finish(disconnect)

    def acked(self, publish, disconnect, mid):
        if self.qos == 0:
            if mid not in self.markers:
                return
            self.markers.discard(mid)
            self.received += self.window
            if time.monotonic() < self.deadline:
                self._batch(publish)
            elif not self.markers:
                self._finish(disconnect)
            return
        self.received_one(publish, disconnect)

    def report(self):
        print("messages=%d seconds=%.4f cpu=%.4f" % (self.received, self.t1 - self.t0,
                                                    self.cpu1 - self.cpu0))
