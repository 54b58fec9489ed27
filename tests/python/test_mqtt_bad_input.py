"""Malformed MQTT from a scripted TCP peer, on both sides: a clear ERROR,
the connection closes, the process (and the manager) carry on."""
import socket
import threading
import time

import pytest

import cymongoose as cm
from core_helpers import DEADLINE_S, poll_until
from mqtt_helpers import Client


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic, payload=b"x", v5=False):
    body = len(topic).to_bytes(2, "big") + topic + (b"\x00" if v5 else b"") + payload
    return b"\x30" + varint(len(body)) + body


# name -> (bytes after CONNACK for a 3.1.1 / a 5.0 client, reason code in the error)
BAD = {
    "remaining length of 5 bytes": (lambda v5: b"\x30\xff\xff\xff\xff\x01", 0x81),
    "invalid UTF-8 topic": (lambda v5: publish(b"a/\xc3\x28", v5=v5), 0x81),
    "surrogate in topic": (lambda v5: publish(b"a/\xed\xa0\x80", v5=v5), 0x81),
    "NUL in topic": (lambda v5: publish(b"a\x00b", v5=v5), 0x81),
    "wildcard in PUBLISH topic": (lambda v5: publish(b"a/+/c", v5=v5), 0x90),
    "multi-level wildcard in PUBLISH topic": (lambda v5: publish(b"a/#", v5=v5), 0x90),
    "oversized packet": (lambda v5: b"\x30" + varint(1 << 20), 0x95),  # max_packet_size=64 KiB
    "QoS 3": (lambda v5: b"\x36\x05\x00\x01a\x00\x01", 0x81),
    "reserved packet type 0": (lambda v5: b"\x00\x00", 0x81),
}


class ScriptedBroker:
    """Accepts one client, answers its CONNECT with CONNACK, then sends
    `bad`; records what the client sends afterwards."""

    def __init__(self, bad, v5):
        self.bad, self.v5 = bad, v5
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(DEADLINE_S)
        self.port = self.sock.getsockname()[1]
        self.after = b""
        self.eof = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(DEADLINE_S)
            c.recv(65536)  # the CONNECT
            c.sendall(b"\x20\x03\x00\x00\x00" if self.v5 else b"\x20\x02\x00\x00")
            time.sleep(0.05)  # MQTT_OPEN first, then the bad bytes
            c.sendall(self.bad)
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        self.eof = True
                        break
                    self.after += chunk
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.thread.join(DEADLINE_S)


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("case", sorted(BAD))
def test_client_fails_cleanly_on_malformed_packets(case, version):
    make, code = BAD[case]
    peer = ScriptedBroker(make(version == 5), version == 5)
    try:
        with cm.Manager() as mgr:
            c = Client(mgr, "mqtt://127.0.0.1:%d" % peer.port, version=version,
                       max_packet_size=64 * 1024, keepalive=0)
            c.wait_open()
            c.wait_closed()
            assert len(c.errors) == 1, c.errors
            assert "MQTT" in c.errors[0] and "0x%02x" % code in c.errors[0].lower(), c.errors
            assert c.msgs == []
            # The manager still works.
            assert mgr.listen("tcp://127.0.0.1:0").is_listening
        peer.thread.join(DEADLINE_S)
        assert peer.eof
        if version == 5:  # we told the broker why, in a DISCONNECT
            assert peer.after[:1] == b"\xe0" and peer.after[2] == code, peer.after
    finally:
        peer.close()


@pytest.mark.parametrize("case", sorted(BAD))
def test_server_side_fails_cleanly_on_malformed_packets(case):
    make, code = BAD[case]
    errors, closes, msgs = [], [], []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_MQTT_CMD and data.cmd == 1:
            conn.send(b"\x20\x02\x00\x00")
        elif ev == cm.MG_EV_MQTT_MSG:
            msgs.append(data.topic)
        elif ev == cm.MG_EV_ERROR:
            errors.append(data)
        elif ev == cm.MG_EV_CLOSE and not conn.is_listening:
            closes.append(conn)

    with cm.Manager() as mgr:
        lst = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler, max_packet_size=64 * 1024)
        port = lst.local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01x")
        assert poll_until(mgr, lambda: mgr.connections and len(mgr.connections) == 2)
        s.sendall(make(False))
        assert poll_until(mgr, lambda: closes)
        assert len(errors) == 1 and "0x%02x" % code in errors[0].lower(), errors
        assert msgs == []
        s.settimeout(DEADLINE_S)
        data = s.recv(100)
        assert data.startswith(b"\x20\x02\x00\x00")  # the CONNACK, then EOF
        rest = s.recv(100)
        assert rest == b""
        s.close()
        # The listener goes on serving.
        good = socket.create_connection(("127.0.0.1", port))
        good.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01y")
        good.settimeout(0)
        got = b""
        end = time.monotonic() + DEADLINE_S
        while len(got) < 4 and time.monotonic() < end:
            mgr.poll(10)
            try:
                got += good.recv(10)
            except BlockingIOError:
                pass
        assert got == b"\x20\x02\x00\x00"
        good.close()


def test_garbage_instead_of_connect_closes_the_connection():
    errors = []
    with cm.Manager(lambda c, ev, d: errors.append(d) if ev == cm.MG_EV_ERROR else None) as mgr:
        port = mgr.mqtt_listen("mqtt://127.0.0.1:0").local_addr[1]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert poll_until(mgr, lambda: errors)
        s.settimeout(DEADLINE_S)
        assert s.recv(100) == b""
        s.close()
    assert "MQTT" in errors[0]
