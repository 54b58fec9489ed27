"""The windowed publish loop bench/mqtt_ours.py and bench/mqtt_paho.py share,
so both clients measure exactly the same thing: argv parsing, the window
logic (start on SUBACK, one more publish per message until the deadline,
then wait for the rest) and the result line.  Only the client library
differs."""
import resource
import sys
import time

PAYLOAD = b"x" * 64


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class WindowLoad:
    """Reads PORT QOS WINDOW SECONDS from sys.argv; the client calls
    started(publish) once subscribed and received_one(publish, disconnect) on
    each message; `done` turns true after the last one comes back."""

    def __init__(self, topic):
        self.port, self.qos = int(sys.argv[1]), int(sys.argv[2])
        self.window, self.seconds = int(sys.argv[3]), float(sys.argv[4])
        self.topic = topic
        self.sent = self.received = 0
        self.t0 = self.cpu0 = self.deadline = self.t1 = self.cpu1 = 0.0
        self.done = False

    def started(self, publish):
        self.t0, self.cpu0 = time.monotonic(), cpu()
        self.deadline = self.t0 + self.seconds
        for _ in range(self.window):
            publish(self.topic, PAYLOAD, self.qos)
        self.sent = self.window

    def received_one(self, publish, disconnect):
        self.received += 1
        if time.monotonic() < self.deadline:
            publish(self.topic, PAYLOAD, self.qos)
            self.sent += 1
        elif self.received == self.sent:
            self.t1, self.cpu1 = time.monotonic(), cpu()
            self.done = True
            disconnect()

    def report(self):
        print("messages=%d seconds=%.4f cpu=%.4f" % (self.received, self.t1 - self.t0,
                                                    self.cpu1 - self.cpu0))
