"""Our MQTT client against mosquitto, MQTT 3.1.1 and 5: QoS 0/1/2 round
trips with exact payloads, retained messages, wills, persistent sessions,
keepalive, TLS, and paho-mqtt as the other end."""
import os
import subprocess
import time

import pytest

import cymongoose as cm
from core_helpers import poll_for, poll_until
from mqtt_helpers import (PINGRESP, PUBACK, PUBCOMP, PUBREC, CONNACK, Client,
                          paho_client, unique)
from mqtt_peers import mosquitto, mosquitto_tls  # noqa: F401  (fixtures)

VERSIONS = [4, 5]
PAYLOADS = {
    "empty": b"",
    "text": "grüße".encode(),
    "binary": bytes(range(256)) * 4,
    "256KiB": os.urandom(256 * 1024),
}


@pytest.fixture
def mgr():
    m = cm.Manager()
    yield m
    m.close()


def pair(mgr, url, version, **kwargs):
    """A subscriber and a publisher, both connected."""
    sub = Client(mgr, url, version=version, client_id=unique("sub"), **kwargs).wait_open()
    pub = Client(mgr, url, version=version, client_id=unique("pub"), **kwargs).wait_open()
    return sub, pub


# ------------------------------------------------------------------ QoS round trips

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_round_trip_exact_payload(mgr, mosquitto, version, qos, payload):
    data = PAYLOADS[payload]
    topic = unique("rt/%d/%d" % (version, qos))
    sub, pub = pair(mgr, mosquitto.url, version)
    assert sub.sub(topic, qos) == [qos]  # granted QoS
    pid = pub.conn.mqtt_pub(topic, data, qos)
    assert (pid == 0) if qos == 0 else (pid > 0)
    [m] = sub.wait_msgs(1)
    assert m.topic == topic and m.data == data and m.qos == qos and not m.retain
    if qos == 1:
        assert poll_until(mgr, lambda: pub.cmd(PUBACK, pid))
    if qos == 2:
        assert poll_until(mgr, lambda: pub.cmd(PUBCOMP, pid))
        assert pub.cmd(PUBREC, pid) is not None
    poll_for(mgr, 0.1)
    assert len(sub.msgs) == 1  # exactly once
    assert not sub.errors and not pub.errors


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [1, 2])
def test_many_messages_keep_order_and_ids(mgr, mosquitto, version, qos):
    """500 at once: more than the broker's window (20 in flight), so the
    client queues and sends as acks free slots, in order."""
    topic = unique("order")
    sub, pub = pair(mgr, mosquitto.url, version)
    sub.sub(topic, 2)
    ids = [pub.conn.mqtt_pub(topic, b"%d" % i, qos) for i in range(500)]
    assert all(i > 0 for i in ids) and len(set(ids)) == len(ids)
    sub.wait_msgs(500)
    assert [m.data for m in sub.msgs] == [b"%d" % i for i in range(500)]


@pytest.mark.parametrize("version", VERSIONS)
def test_text_str_message_and_keywords(mgr, mosquitto, version):
    topic = unique("kw")
    sub, pub = pair(mgr, mosquitto.url, version)
    sub.sub(topic=topic, qos=1)
    pub.conn.mqtt_pub(topic=topic, message="héllo", qos=1, retain=False)
    [m] = sub.wait_msgs(1)
    assert m.data == "héllo".encode()


# ------------------------------------------------------------------ retained

@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_received_on_subscribe(mgr, mosquitto, version):
    topic = unique("retained")
    pub = Client(mgr, mosquitto.url, version=version).wait_open()
    pid = pub.conn.mqtt_pub(topic, b"\x00kept\xff", qos=1, retain=True)
    assert poll_until(mgr, lambda: pub.cmd(PUBACK, pid))
    late = Client(mgr, mosquitto.url, version=version).wait_open()
    late.sub(topic, 1)
    [m] = late.wait_msgs(1)
    assert m.data == b"\x00kept\xff" and m.retain
    pub.conn.mqtt_pub(topic, b"", qos=1, retain=True)  # clears it on the broker


# ------------------------------------------------------------------ will

@pytest.mark.parametrize("version", VERSIONS)
def test_will_published_when_client_dies_without_disconnect(mgr, mosquitto, version):
    topic = unique("will")
    watcher = Client(mgr, mosquitto.url, version=version).wait_open()
    watcher.sub(topic, 1)
    kwargs = {}
    if version == 5:
        kwargs["will_properties"] = {"content_type": "text/plain",
                                     "user_property": [("why", "died")]}
    dying = Client(mgr, mosquitto.url, version=version, will_topic=topic,
                   will_message=b"gone\x00", will_qos=1, **kwargs).wait_open()
    dying.conn.close()  # no DISCONNECT
    [m] = watcher.wait_msgs(1)
    assert m.topic == topic and m.data == b"gone\x00" and m.qos == 1
    if version == 5:
        props = {(p["id"], p["key"], p["val"]) for p in m.properties}
        assert (0x03, "", "text/plain") in props and (0x26, "why", "died") in props


@pytest.mark.parametrize("version", VERSIONS)
def test_no_will_after_mqtt_disconnect(mgr, mosquitto, version):
    topic = unique("nowill")
    watcher = Client(mgr, mosquitto.url, version=version).wait_open()
    watcher.sub(topic, 1)
    polite = Client(mgr, mosquitto.url, version=version, will_topic=topic,
                    will_message=b"should not come").wait_open()
    polite.conn.mqtt_disconnect()
    polite.wait_closed()
    # A marker published after the disconnect: the will, if any, came before it.
    marker = Client(mgr, mosquitto.url, version=version).wait_open()
    marker.conn.mqtt_pub(topic, b"marker", qos=1)
    watcher.wait_msgs(1)
    poll_for(mgr, 0.2)
    assert [m.data for m in watcher.msgs] == [b"marker"]


# ------------------------------------------------------------------ persistent session

@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_session_gets_messages_published_while_away(mgr, mosquitto, version):
    topic, cid = unique("persist"), unique("persistent-client")
    extra = {"properties": {"session_expiry_interval": 300}} if version == 5 else {}
    first = Client(mgr, mosquitto.url, version=version, client_id=cid, clean_session=False,
                   **extra).wait_open()
    first.sub(topic, 1)
    first.conn.mqtt_disconnect()
    first.wait_closed()
    pub = Client(mgr, mosquitto.url, version=version).wait_open()
    ids = [pub.conn.mqtt_pub(topic, b"while away %d" % i, qos=1) for i in range(3)]
    assert poll_until(mgr, lambda: all(pub.cmd(PUBACK, i) for i in ids))
    back = Client(mgr, mosquitto.url, version=version, client_id=cid, clean_session=False,
                  **extra).wait_open()
    connack = back.cmd(CONNACK)
    assert connack is not None and connack.ack == 0
    back.wait_msgs(3)
    assert [m.data for m in back.msgs] == [b"while away %d" % i for i in range(3)]
    # A clean session forgets: nothing more comes after a clean reconnect.
    back.conn.mqtt_disconnect()
    back.wait_closed()
    clean = Client(mgr, mosquitto.url, version=version, client_id=cid,
                   clean_session=True).wait_open()
    pub.conn.mqtt_pub(topic, b"not for the clean one", qos=1)
    poll_for(mgr, 0.3)
    assert clean.msgs == []


# ------------------------------------------------------------------ keepalive

@pytest.mark.parametrize("version", VERSIONS)
def test_keepalive_pings_on_an_idle_connection(mgr, mosquitto, version):
    cid = unique("idle")
    idle = Client(mgr, mosquitto.url, version=version, client_id=cid, keepalive=1).wait_open()
    assert poll_until(mgr, lambda: sum(c.cmd == PINGRESP for c in idle.cmds) >= 2), idle.cmds
    assert not idle.closed and not idle.errors
    assert "Received PINGREQ from %s" % cid in mosquitto.log_text()


def test_explicit_ping_gets_pingresp(mgr, mosquitto):
    c = Client(mgr, mosquitto.url, keepalive=0).wait_open()
    c.conn.mqtt_ping()
    assert poll_until(mgr, lambda: c.cmd(PINGRESP))


# ------------------------------------------------------------------ TLS

@pytest.mark.parametrize("version", VERSIONS)
def test_mqtts_with_trustme_certificate(mgr, mosquitto_tls, version):
    tls = cm.TlsOpts(ca=mosquitto_tls.ca)
    topic = unique("tls")
    sub, pub = pair(mgr, mosquitto_tls.tls_url, version, tls=tls)
    assert sub.conn.is_tls and pub.conn.is_tls
    sub.sub(topic, 2)
    data = os.urandom(100_000)
    pub.conn.mqtt_pub(topic, data, qos=2)
    [m] = sub.wait_msgs(1)
    assert m.data == data


def test_mqtts_tls_init_on_connect_as_the_original_did(mgr, mosquitto_tls):
    """The original package's MQTTS recipe: tls_init(TlsOpts) on CONNECT."""
    events = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            conn.tls_init(cm.TlsOpts(ca=mosquitto_tls.ca, name="localhost"))
        elif ev in (cm.MG_EV_MQTT_OPEN, cm.MG_EV_ERROR):
            events.append((ev, data))

    mgr.mqtt_connect(mosquitto_tls.tls_url, handler)
    assert poll_until(mgr, lambda: events)
    assert events == [(cm.MG_EV_MQTT_OPEN, 0)]


def test_mqtts_unknown_ca_is_an_error(mgr, mosquitto_tls):
    c = Client(mgr, mosquitto_tls.tls_url)  # the system store does not know trustme's CA
    c.wait_closed()
    assert c.opened is None and c.errors and "certificate" in c.errors[0].lower()


@pytest.mark.parametrize("on_error", ["mqtt_disconnect", "send"])
def test_mqtts_failed_handshake_closes_at_once(mgr, mosquitto_tls, on_error):
    """A handshake that fails (mosquitto's certificate not trusted) gives one
    ERROR and the connection closes, even when the ERROR handler queues bytes
    (a DISCONNECT, a goodbye) that can never be encrypted: they used to keep
    the drain waiting until the CONNACK deadline raised a second ERROR.  That
    deadline is set far beyond the wait here."""
    errors, closed = [], []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ERROR:
            errors.append(data)
            if on_error == "send":
                conn.send(b"must not leave in clear")
            else:
                conn.mqtt_disconnect()
        elif ev == cm.MG_EV_CLOSE:
            closed.append(True)

    mgr.mqtt_connect(mosquitto_tls.tls_url, handler, connect_timeout_ms=600_000)
    assert poll_until(mgr, lambda: closed), errors
    assert len(errors) == 1 and "certificate" in errors[0].lower(), errors


# ------------------------------------------------------------------ refused

def test_refused_connection_is_a_readable_error(mgr, tmp_path):
    from mqtt_peers import Mosquitto
    from peers import find_exe, tcp_peer
    m = Mosquitto(tmp_path, extra_conf="")
    # No anonymous clients on this broker.
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    with tcp_peer("mosquitto", [find_exe("mosquitto"), "-c", str(m.conf)], m.port, tmp_path):
        for version in VERSIONS:
            c = Client(mgr, m.url, version=version)
            c.wait_closed()
            assert c.opened is None
            assert len(c.errors) == 1 and "refused" in c.errors[0], c.errors


# ------------------------------------------------------------------ paho-mqtt

def paho_connect(client, port):
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    return client


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_receives_what_we_publish(mgr, mosquitto, version, qos):
    topic = unique("to-paho")
    p = paho_client(version)
    subscribed = []
    p.on_subscribe = lambda *a: subscribed.append(a)
    paho_connect(p, mosquitto.port)
    try:
        assert poll_until(mgr, lambda: p.is_connected())
        p.subscribe(topic, qos)
        assert poll_until(mgr, lambda: subscribed)
        ours = Client(mgr, mosquitto.url, version=version).wait_open()
        data = os.urandom(70_000)
        kwargs = {"properties": {"user_property": [("k", "v")], "content_type": "app/x"}} \
            if version == 5 else {}
        ours.conn.mqtt_pub(topic, data, qos, **kwargs)
        assert poll_until(mgr, lambda: p.received)
        [(t, payload, q, retain, props)] = p.received
        assert (t, payload, q, retain) == (topic, data, qos, False)
        if version == 5:
            assert props["UserProperty"] == [("k", "v")] and props["ContentType"] == "app/x"
    finally:
        p.loop_stop()
        p.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_we_receive_what_paho_publishes(mgr, mosquitto, version, qos):
    topic = unique("from-paho")
    ours = Client(mgr, mosquitto.url, version=version).wait_open()
    ours.sub(topic, qos)
    p = paho_connect(paho_client(version), mosquitto.port)
    try:
        assert poll_until(mgr, lambda: p.is_connected())
        data = bytes(range(256)) * 100
        props = None
        if version == 5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("a", "1"), ("b", "2")]
            props.CorrelationData = b"\x00\x01corr"
            props.ResponseTopic = "reply/here"
        p.publish(topic, data, qos, properties=props)
        [m] = ours.wait_msgs(1)
        assert m.data == data and m.qos == qos
        if version == 5:
            got = [(d["id"], d["key"], d["val"]) for d in m.properties]
            assert (0x26, "a", "1") in got and (0x26, "b", "2") in got
            assert (0x08, "", "reply/here") in got
            corr = [d["val"] for d in m.properties if d["id"] == 0x09]
            assert [c.encode("utf-8", "surrogateescape") for c in corr] == [b"\x00\x01corr"]
    finally:
        p.loop_stop()
        p.disconnect()


# ------------------------------------------------------------------ mosquitto_sub as a peer

def test_mosquitto_sub_receives_v5_user_properties(mgr, mosquitto):
    topic = unique("cli")
    proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mosquitto.port),
                             "-V", "mqttv5", "-t", topic, "-C", "1", "-F", "%t|%p|%P"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait until mosquitto has its subscription.
        end = time.monotonic() + 10
        while topic not in mosquitto.log_text() and time.monotonic() < end:
            mgr.poll(20)
        ours = Client(mgr, mosquitto.url, version=5).wait_open()
        ours.conn.mqtt_pub(topic, "hi there", qos=1, properties={"user_property": {"x": "y"}})
        end = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < end:
            mgr.poll(10)
        out, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.decode().strip() == "%s|hi there|x:y" % topic, err


# ------------------------------------------------------------------ AsyncManager

async def test_async_manager_mqtt_client_and_listener(mosquitto):
    import asyncio
    from cymongoose import AsyncManager
    loop = asyncio.get_running_loop()
    got, served = loop.create_future(), []
    topic = unique("aio")

    def client(conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            conn.mqtt_sub(topic, 1)
        elif ev == cm.MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK
            conn.mqtt_pub(topic, b"through asyncio", 1)
        elif ev == cm.MG_EV_MQTT_MSG and not got.done():
            got.set_result(data.data)

    def server(conn, ev, data):
        if ev == cm.MG_EV_MQTT_CMD and data.cmd == 1:
            served.append(data.client_id)
            conn.send(b"\x20\x02\x00\x00")

    async with AsyncManager(None) as am:
        am.mqtt_connect(mosquitto.url, client, version=5)
        assert await asyncio.wait_for(got, 20) == b"through asyncio"
        port = am.mqtt_listen("mqtt://127.0.0.1:0", server).local_addr[1]
        opened = loop.create_future()
        am.mqtt_connect("mqtt://127.0.0.1:%d" % port, client_id="to-our-listener",
                        handler=lambda c, ev, d: opened.set_result(d)
                        if ev == cm.MG_EV_MQTT_OPEN else None)
        assert await asyncio.wait_for(opened, 20) == 0
        assert served == ["to-our-listener"]


# ------------------------------------------------------------------ MqttSession: resend with DUP

@pytest.mark.parametrize("version", VERSIONS)
def test_session_resends_unacknowledged_messages_with_dup(mgr, mosquitto, version):
    topic, cid = unique("resend"), unique("resender")
    extra = {"properties": {"session_expiry_interval": 300}} if version == 5 else {}
    watcher = Client(mgr, mosquitto.url, version=version).wait_open()
    watcher.sub(topic, 1)
    session = cm.MqttSession()
    first = Client(mgr, mosquitto.url, version=version, client_id=cid, clean_session=False,
                   session=session, **extra).wait_open()
    assert session.in_use
    with pytest.raises(RuntimeError, match="in use"):
        mgr.mqtt_connect(mosquitto.url, session=session)
    ids = [first.conn.mqtt_pub(topic, b"in flight %d" % i, qos=1 + i % 2) for i in range(3)]
    first.conn.close()  # dropped before the broker saw (or acknowledged) them
    first.wait_closed()
    assert session.pending == 3 and not session.in_use
    assert watcher.msgs == []
    second = Client(mgr, mosquitto.url, version=version, client_id=cid, clean_session=False,
                    session=session, **extra).wait_open()
    watcher.wait_msgs(3)
    assert sorted(m.data for m in watcher.msgs) == [b"in flight %d" % i for i in range(3)]
    assert poll_until(mgr, lambda: session.pending == 0)
    log = mosquitto.log_text()
    # Sent again with DUP set (the dropped connection never sent them at all).
    assert log.count("Received PUBLISH from %s (d1," % cid) == 3, log[-2000:]
    assert len(set(ids)) == 3
    second.conn.mqtt_disconnect()
    second.wait_closed()
    del session  # freed once no connection uses it


# ------------------------------------------------------------------ MQTT 5 options

def test_v5_subscription_options_and_identifiers(mgr, mosquitto):
    topic = unique("v5opts")
    c = Client(mgr, mosquitto.url, version=5).wait_open()
    retained = Client(mgr, mosquitto.url, version=5).wait_open()
    pid = retained.conn.mqtt_pub(topic + "/r", b"old", 1, retain=True)
    assert poll_until(mgr, lambda: retained.cmd(PUBACK, pid))
    assert c.sub(topic + "/r", 1, retain_handling=2) == [1]     # no retained message
    assert c.sub(topic + "/mine", 1, no_local=True) == [1]      # not our own messages
    assert c.sub(topic + "/id", 1, subscription_id=77) == [1]
    c.conn.mqtt_pub(topic + "/mine", b"echo?", 1)
    c.conn.mqtt_pub(topic + "/id", b"tagged", 1, topic_alias=True)
    c.conn.mqtt_pub(topic + "/id", b"tagged again", 1, topic_alias=True)
    c.wait_msgs(2)
    poll_for(mgr, 0.2)
    assert [(m.topic, m.data) for m in c.msgs] == [(topic + "/id", b"tagged"),
                                                   (topic + "/id", b"tagged again")]
    for m in c.msgs:
        assert {"id": 0x0B, "iv": 77, "key": "", "val": ""} in m.properties
    retained.conn.mqtt_pub(topic + "/r", b"", 1, retain=True)


def test_v5_request_response_properties_pass_through(mgr, mosquitto):
    topic = unique("rpc")
    server = Client(mgr, mosquitto.url, version=5).wait_open()
    server.sub(topic + "/req", 1)
    client = Client(mgr, mosquitto.url, version=5).wait_open()
    client.sub(topic + "/reply", 1)
    client.conn.mqtt_pub(topic + "/req", b"2+2", 1, properties={
        "response_topic": topic + "/reply", "correlation_data": b"\x00\xffid",
        "message_expiry_interval": 60, "payload_format_indicator": 1})
    [req] = server.wait_msgs(1)
    props = {p["id"]: p for p in req.properties}
    assert props[0x08]["val"] == topic + "/reply" and props[0x01]["iv"] == 1
    assert 0 < props[0x02]["iv"] <= 60
    # Answer with the request's correlation data, passed on as received.
    server.conn.mqtt_pub(props[0x08]["val"], b"4", 1, properties=[props[0x09]])
    [reply] = client.wait_msgs(1)
    corr = [p["val"] for p in reply.properties if p["id"] == 0x09]
    assert [v.encode("utf-8", "surrogateescape") for v in corr] == [b"\x00\xffid"]
