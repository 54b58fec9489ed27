"""MQTT 5 client extras from Python: topic aliases on QoS 1 and 2 through
mosquitto, Message Expiry counted down while messages wait (expired ones
dropped, logged and counted), and enhanced authentication (auth_method,
MQTT_CMD for AUTH, mqtt_auth) against a low-level server of ours and against
a scripted socket peer."""
import logging
import socket
import threading

import pytest

import cymongoose as cm
from core_helpers import DEADLINE_S, poll_for, poll_until
from mqtt_helpers import CONNECT, PUBACK, PUBCOMP, Client, unique
from mqtt_peers import mosquitto  # noqa: F401  (fixture)

AUTH = 15


@pytest.fixture
def mgr():
    m = cm.Manager()
    yield m
    m.close()


def test_topic_aliases_on_qos1_and_qos2_through_mosquitto(mgr, mosquitto):
    base = unique("alias")
    sub = Client(mgr, mosquitto.url, version=5, client_id=unique("s")).wait_open()
    pub = Client(mgr, mosquitto.url, version=5, client_id=unique("p")).wait_open()
    assert sub.sub(base + "/#", 2) == [2]
    sent = []
    for i in range(40):  # 4 topics, QoS 1 and 2 alternating
        topic, payload = "%s/t%d" % (base, i % 4), bytes([i, 0, 255]) + b"m%d" % i
        qos = 1 + i % 2
        assert pub.conn.mqtt_pub(topic, payload, qos, topic_alias=True) > 0
        sent.append((topic, payload, qos))
    sub.wait_msgs(40)
    poll_for(mgr, 0.1)
    assert sorted((m.topic, m.data, m.qos) for m in sub.msgs) == sorted(sent)
    assert len([c for c in pub.cmds if c.cmd == PUBACK]) == 20
    assert poll_until(mgr, lambda: len([c for c in pub.cmds if c.cmd == PUBCOMP]) == 20)
    assert not pub.errors and not sub.errors and not pub.closed


class SilentBroker:
    """Accepts one client, answers its CONNECT with a v5 CONNACK with Receive
    Maximum 1, then acknowledges nothing until told to (ack(id))."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(DEADLINE_S)
        self.port = self.sock.getsockname()[1]
        self.got = b""
        self.conn = None
        self.ready = threading.Event()
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
            c.sendall(b"\x20\x06\x00\x00\x03\x21\x00\x01")
            self.conn = c
            self.ready.set()
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    self.got += chunk
            except OSError:
                pass

    def ack(self, pid):
        self.conn.sendall(b"\x40\x02" + pid.to_bytes(2, "big"))

    def close(self):
        self.sock.close()
        self.thread.join(DEADLINE_S)


def test_expired_messages_are_dropped_logged_and_counted(mgr, caplog):
    peer = SilentBroker()
    cm.log_to_logging(cm.MG_LL_INFO)
    try:
        session = cm.MqttSession()
        c = Client(mgr, "mqtt://127.0.0.1:%d" % peer.port, version=5, client_id="exp",
                   session=session, keepalive=0).wait_open()
        first = c.conn.mqtt_pub("e/1", b"first", 1)  # in flight, acked late
        c.conn.mqtt_pub("e/2", b"short", 1, properties={"message_expiry_interval": 1})
        c.conn.mqtt_pub("e/3", b"long", 1, properties={"message_expiry_interval": 60})
        with caplog.at_level(logging.INFO, logger="cymongoose"):
            poll_for(mgr, 1.1)  # "short" runs out while it waits for the window
            assert b"short" not in peer.got
            peer.ack(first)
            assert poll_until(mgr, lambda: b"long" in peer.got)
            poll_for(mgr, 0.05)
        assert b"short" not in peer.got
        assert session.expired == 1 and session.pending == 1
        assert any("e/2 expired" in r.getMessage() for r in caplog.records), caplog.records
        # What went out carries what was left of its minute.
        at = peer.got.index(b"\x02\x00\x00\x00", peer.got.index(b"e/3"))
        left = int.from_bytes(peer.got[at + 1:at + 5], "big")
        assert 1 <= left <= 59
        assert not c.errors
        c.conn.close()
        c.wait_closed()
    finally:
        cm.log_to_stderr()
        cm.log_set(cm.MG_LL_NONE)
        peer.close()


class AuthServer:
    """A low-level server of ours doing a challenge/response for method
    "CR": CONNECT -> AUTH 0x18 b"c1"; b"re:c1" -> CONNACK; a client's 0x19
    -> AUTH 0x18 b"c2"; b"re:c2" -> AUTH 0x00."""

    def __init__(self, mgr):
        self.seen = []  # (cmd, reason, auth data) received
        self.listener = mgr.mqtt_listen("mqtt://127.0.0.1:0", self.handler)
        self.port = self.listener.local_addr[1]

    def handler(self, conn, ev, data):
        if ev != cm.MG_EV_MQTT_CMD or data.cmd not in (CONNECT, AUTH):
            return
        props = {p["id"]: p for p in data.properties()}
        method = props.get(0x15, {}).get("val")
        blob = props.get(0x16, {}).get("val")
        self.seen.append((data.cmd, data.ack, method, blob))
        if data.cmd == CONNECT:
            conn.mqtt_auth(0x18, b"c1")  # the method is the CONNECT's
        elif blob == "re:c1":
            conn.send(b"\x20\x08\x00\x00\x05\x15\x00\x02CR")  # CONNACK with the method
        elif data.ack == 0x19:
            conn.mqtt_auth(0x18, b"c2", method="CR")
        elif blob == "re:c2":
            conn.mqtt_auth(0)


def test_enhanced_authentication_and_reauthentication(mgr):
    server = AuthServer(mgr)
    challenges = []

    class AuthClient(Client):
        def handler(self, conn, ev, data):
            if ev == cm.MG_EV_MQTT_CMD and data.cmd == AUTH and data.ack == 0x18:
                blob = {p["id"]: p for p in data.properties()}[0x16]["val"]
                challenges.append(blob)
                conn.mqtt_auth(0x18, b"re:" + blob.encode())
            super().handler(conn, ev, data)

    c = AuthClient(mgr, "mqtt://127.0.0.1:%d" % server.port, version=5, auth_method="CR",
                   auth_data=b"hi").wait_open()
    assert challenges == ["c1"]
    c.conn.mqtt_auth(0x19, b"again")
    assert poll_until(mgr, lambda: any(x.cmd == AUTH and x.ack == 0 for x in c.cmds))
    assert challenges == ["c1", "c2"]
    assert server.seen == [(CONNECT, 0, "CR", "hi"), (AUTH, 0x18, "CR", "re:c1"),
                           (AUTH, 0x19, "CR", "again"), (AUTH, 0x18, "CR", "re:c2")]
    assert not c.errors
    with pytest.raises(ValueError):
        c.conn.mqtt_auth(0)  # success is the server's to say
    with pytest.raises(ValueError):
        mgr.mqtt_connect("mqtt://127.0.0.1:1", auth_method="CR")  # needs version=5
    with pytest.raises(ValueError):
        mgr.mqtt_connect("mqtt://127.0.0.1:1", version=5, auth_data=b"x")  # without a method


def test_auth_from_a_server_we_did_not_ask_is_a_protocol_error(mgr):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.settimeout(DEADLINE_S)
    after = []

    def run():
        c, _ = sock.accept()
        with c:
            c.settimeout(DEADLINE_S)
            c.recv(65536)
            c.sendall(b"\xf0\x06\x18\x04\x15\x00\x01X")  # AUTH 0x18, method "X"
            try:
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    after.append(chunk)
            except OSError:
                pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        c = Client(mgr, "mqtt://127.0.0.1:%d" % sock.getsockname()[1], version=5, keepalive=0)
        c.wait_closed()
        assert len(c.errors) == 1 and "(0x82)" in c.errors[0], c.errors
        assert "Authentication Method" in c.errors[0]
        t.join(DEADLINE_S)
        assert b"".join(after).endswith(b"\xe0\x01\x82")  # DISCONNECT 0x82
    finally:
        sock.close()
