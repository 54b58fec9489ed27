"""Helpers of the MQTT tests: a recording client on our Manager, and a
driver polling until something happened."""
import collections
import itertools

import cymongoose as cm
from core_helpers import poll_until

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

Msg = collections.namedtuple("Msg", "topic data qos retain dup id properties")
Cmd = collections.namedtuple("Cmd", "cmd id ack codes")

_ids = itertools.count(1)


def unique(prefix):
    """A topic or client id no other test uses on the same broker."""
    return "%s-%d" % (prefix, next(_ids))


class Client:
    """Our MQTT client with everything it saw recorded (copies: the views
    are valid only during the handler call)."""

    def __init__(self, mgr, url, **kwargs):
        self.mgr = mgr
        self.opened = None     # the CONNACK code of MG_EV_MQTT_OPEN
        self.msgs = []         # Msg per MG_EV_MQTT_MSG
        self.cmds = []         # Cmd per MG_EV_MQTT_CMD
        self.errors = []       # MG_EV_ERROR strings
        self.closed = False
        self.on_open = None    # called with the connection on MG_EV_MQTT_OPEN
        self.conn = mgr.mqtt_connect(url, self.handler, **kwargs)

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            self.opened = data
            if self.on_open is not None:
                self.on_open(conn)
        elif ev == cm.MG_EV_MQTT_MSG:
            self.msgs.append(Msg(data.topic, data.data, data.qos, data.retain, data.dup, data.id,
                                 data.properties()))
        elif ev == cm.MG_EV_MQTT_CMD:
            self.cmds.append(Cmd(data.cmd, data.id, data.ack, data.codes()))
        elif ev == cm.MG_EV_ERROR:
            self.errors.append(data)
        elif ev == cm.MG_EV_CLOSE:
            self.closed = True

    def wait_open(self):
        assert poll_until(self.mgr, lambda: self.opened is not None or self.closed), self.errors
        assert self.opened == 0, (self.opened, self.errors)
        return self

    def cmd(self, kind, pid=None):
        """The first packet of that type (and id) received, or None."""
        for c in self.cmds:
            if c.cmd == kind and (pid is None or c.id == pid):
                return c
        return None

    def sub(self, topic, qos=0, **kwargs):
        """Subscribes and waits for the SUBACK; returns its codes."""
        pid = self.conn.mqtt_sub(topic, qos, **kwargs)
        assert pid > 0
        assert poll_until(self.mgr, lambda: self.cmd(SUBACK, pid) or self.closed), self.errors
        return self.cmd(SUBACK, pid).codes

    def wait_msgs(self, n):
        assert poll_until(self.mgr, lambda: len(self.msgs) >= n or self.closed), \
            (len(self.msgs), self.errors)
        return self.msgs

    def wait_closed(self):
        assert poll_until(self.mgr, lambda: self.closed)


def paho_client(version, client_id="", transport="tcp"):
    """A python3-paho-mqtt 1.6 client for protocol version 4 or 5 over
    transport ("tcp" or "websockets"; not yet connected); on_message appends (topic, payload, qos, retain,
    properties) to client.received."""
    import paho.mqtt.client as paho
    proto = paho.MQTTv5 if version == 5 else paho.MQTTv311
    kwargs = {} if version == 5 else {"clean_session": True}
    c = paho.Client(client_id=client_id, protocol=proto, transport=transport, **kwargs)
    c.received = []

    def on_message(client, userdata, msg):
        props = {}
        if version == 5 and msg.properties is not None:
            props = msg.properties.json()
        c.received.append((msg.topic, msg.payload, msg.qos, bool(msg.retain), props))
    c.on_message = on_message
    return c


def topic_matches(topic, pattern):
    """MQTT topic filter matching (+ one level, # the rest)."""
    t, p = topic.split("/"), pattern.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(t) == len(p)


class TinyBroker:
    """The handler an application of the original package would write."""

    def __init__(self, mgr, url="mqtt://127.0.0.1:0"):
        self.subs = []  # (conn, filter, qos)
        self.seen = []  # cmd of every MQTT_CMD
        self.errors = []
        self.listener = mgr.mqtt_listen(url, self.handler)
        self.port = self.listener.local_addr[1]

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_MQTT_CMD:
            self.seen.append(data.cmd)
            v5 = data.version == 5
            props = b"\x00" if v5 else b""
            if data.cmd == CONNECT:
                conn.userdata = data.client_id
                body = b"\x00\x00" + props  # session present 0, code 0
                conn.send(bytes([0x20, len(body)]) + body)
            elif data.cmd == SUBSCRIBE:
                codes = bytearray()
                for flt, opts in data.topics():
                    self.subs.append((conn, flt, opts & 3))
                    codes.append(opts & 3)
                body = data.id.to_bytes(2, "big") + props + bytes(codes)
                conn.send(bytes([0x90, len(body)]) + body)
            elif data.cmd == UNSUBSCRIBE:
                gone = {flt for flt, _ in data.topics()}
                self.subs = [s for s in self.subs if not (s[0] is conn and s[1] in gone)]
                body = data.id.to_bytes(2, "big") + props + (b"\x00" * len(gone) if v5 else b"")
                conn.send(bytes([0xB0, len(body)]) + body)
            elif data.cmd == PINGREQ:
                conn.mqtt_pong()
            elif data.cmd == DISCONNECT:
                conn.drain()
        elif ev == cm.MG_EV_MQTT_MSG:  # a PUBLISH (its PUBACK/PUBREC are sent for us)
            for sub, flt, qos in list(self.subs):
                if topic_matches(data.topic, flt) and not sub.is_closing:
                    sub.mqtt_pub(data.topic, data.data, min(qos, data.qos), data.retain)
        elif ev == cm.MG_EV_ERROR:
            self.errors.append(data)
        elif ev == cm.MG_EV_CLOSE:
            self.subs = [s for s in self.subs if s[0] is not conn]
