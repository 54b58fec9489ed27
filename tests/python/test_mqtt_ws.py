"""MQTT over WebSocket against the npm aedes broker (ws://, subprotocol
mqtt), and MQTT.js as the peer over WebSocket and TCP (MQTT 3.1.1 and 5).
The npm packages come from scripts/npm-peers.sh; without them these tests
skip and say so."""
import os

import pytest

import cymongoose as cm
from core_helpers import poll_until
from mqtt_helpers import Client, TinyBroker, unique
from mqtt_peers import MqttJs, aedes_ws, aedes_wss, mosquitto  # noqa: F401  (fixtures)


@pytest.fixture
def mgr():
    m = cm.Manager()
    yield m
    m.close()


def mqttjs_events(js, mgr, until):
    """Polls mgr while collecting MQTT.js events until until(events) holds."""
    events = []

    def more():
        while not js.lines.empty():
            ev = js.lines.get()
            if ev is None:
                return True
            events.append(ev)
        return until(events)

    assert poll_until(mgr, more), (events, js.proc.stderr.peek() if js.proc.stderr else b"")
    return events


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_ws_round_trip_through_aedes(mgr, aedes_ws, qos):
    topic = unique("ws")
    sub = Client(mgr, aedes_ws.ws_url, client_id=unique("ws-sub")).wait_open()
    pub = Client(mgr, aedes_ws.ws_url, client_id=unique("ws-pub")).wait_open()
    assert sub.sub(topic, qos) == [qos]
    payloads = [b"", b"small", os.urandom(70_000), os.urandom(256 * 1024)]
    for p in payloads:
        pub.conn.mqtt_pub(topic, p, qos)
    sub.wait_msgs(len(payloads))
    assert [m.data for m in sub.msgs] == payloads and {m.qos for m in sub.msgs} == {qos}
    assert not sub.errors and not pub.errors


def test_mqttjs_publishes_over_ws_to_us(mgr, aedes_ws):
    topic = unique("js-to-us")
    ours = Client(mgr, aedes_ws.ws_url).wait_open()
    ours.sub(topic, 1)
    data = bytes(range(256)) * 10
    js = MqttJs(aedes_ws.ws_url, publish=[(topic, data, 1, False), (topic, b"two", 0, False)])
    try:
        ours.wait_msgs(2)
        assert [(m.data, m.qos) for m in ours.msgs] == [(data, 1), (b"two", 0)]
    finally:
        js.stop()


def test_mqttjs_receives_over_ws_from_us(mgr, aedes_ws):
    topic = unique("us-to-js")
    js = MqttJs(aedes_ws.ws_url, subscribe=[(topic, 2)], expect=2)
    try:
        mqttjs_events(js, mgr, lambda evs: any(e["ev"] == "subscribed" for e in evs))
        ours = Client(mgr, aedes_ws.ws_url).wait_open()
        ours.conn.mqtt_pub(topic, b"\x00\x01\x02", 2)
        ours.conn.mqtt_pub(topic, "text", 1)
        events = mqttjs_events(js, mgr, lambda evs: any(e["ev"] == "done" for e in evs))
        got = [(e["payload"], e["qos"]) for e in events if e["ev"] == "message"]
        assert sorted(got) == [(b"\x00\x01\x02", 2), (b"text", 1)]  # order is per QoS level
    finally:
        js.stop()


@pytest.mark.parametrize("version", [4, 5])
def test_mqttjs_over_tcp_through_mosquitto(mgr, mosquitto, version):
    topic = unique("js-tcp")
    ours = Client(mgr, mosquitto.url, version=version).wait_open()
    ours.sub(topic, 1)
    options = {"protocolVersion": version}
    js = MqttJs(mosquitto.url, options=options, subscribe=[(topic + "/back", 1)], expect=1,
                publish=[(topic, b"from js", 1, False)])
    try:
        [m] = ours.wait_msgs(1)
        assert m.data == b"from js"
        mqttjs_events(js, mgr, lambda evs: any(e["ev"] == "subscribed" for e in evs))
        props = {"user_property": [("who", "cymongoose")]} if version == 5 else None
        ours.conn.mqtt_pub(topic + "/back", b"to js", 1, properties=props)
        events = mqttjs_events(js, mgr, lambda evs: any(e["ev"] == "done" for e in evs))
        [msg] = [e for e in events if e["ev"] == "message"]
        assert msg["payload"] == b"to js"
        if version == 5:
            assert msg["properties"].get("userProperties") == {"who": "cymongoose"}
    finally:
        js.stop()


def test_mqttjs_against_our_lowlevel_broker(mgr):
    broker = TinyBroker(mgr)
    url = "mqtt://127.0.0.1:%d" % broker.port
    topic = unique("js-ll")
    js = MqttJs(url, subscribe=[(topic, 1)], publish=[(topic, b"echo me", 1, False)], expect=1)
    try:
        events = mqttjs_events(js, mgr, lambda evs: any(e["ev"] == "done" for e in evs))
        assert [e["payload"] for e in events if e["ev"] == "message"] == [b"echo me"]
    finally:
        js.stop()
    assert broker.errors == []


def test_wss_round_trip_through_aedes(mgr, aedes_wss):
    tls = cm.TlsOpts(ca=aedes_wss.ca)
    topic = unique("wss")
    sub = Client(mgr, aedes_wss.wss_url, tls=tls).wait_open()
    pub = Client(mgr, aedes_wss.wss_url, tls=tls).wait_open()
    assert sub.conn.is_tls and pub.conn.is_tls
    sub.sub(topic, 1)
    data = os.urandom(100_000)
    pub.conn.mqtt_pub(topic, data, 1)
    [m] = sub.wait_msgs(1)
    assert m.data == data
    # Without the CA the certificate is refused.
    bad = Client(mgr, aedes_wss.wss_url)
    bad.wait_closed()
    assert bad.opened is None and "certificate" in bad.errors[0].lower()


def test_lowlevel_broker_over_tls(mgr, tmp_path):
    from mqtt_peers import trustme_certs
    certs = trustme_certs(tmp_path / "certs")
    broker = TinyBroker(mgr, "mqtts://127.0.0.1:0")
    broker.listener.tls_init(cm.TlsOpts(cert=(certs / "server.pem").read_bytes(),
                                        key=(certs / "server.key").read_bytes()))
    url = "mqtts://localhost:%d" % broker.port
    tls = cm.TlsOpts(ca=(certs / "client.pem").read_bytes())
    topic = unique("ll-tls")
    sub = Client(mgr, url, tls=tls, version=5).wait_open()
    sub.sub(topic, 1)
    pub = Client(mgr, url, tls=tls).wait_open()
    pub.conn.mqtt_pub(topic, b"secret", 1)
    [m] = sub.wait_msgs(1)
    assert m.data == b"secret" and broker.errors == []
