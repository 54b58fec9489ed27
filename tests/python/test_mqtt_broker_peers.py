"""MqttBroker (Manager.mqtt_broker) against third-party clients, one test per
point of the protocol list of issue 10: python3-paho-mqtt (3.1.1 and 5),
mosquitto_pub/mosquitto_sub (-V mqttv31, mqttv311, mqttv5) and MQTT.js over
TCP and WebSocket.  The broker's Manager polls in a thread of this process;
everything the test reads from the broker goes through BrokerThread.call(),
which runs in that thread."""
import queue
import socket
import subprocess
import threading
import time

import pytest

import cymongoose as cm
from mqtt_helpers import paho_client, unique
from mqtt_peers import MqttJs
from peers import find_exe

TIMEOUT = 20


class BrokerThread:
    """A Manager with an MqttBroker (mqtt:// and ws://.../mqtt listeners),
    polled by a thread until close()."""

    def __init__(self, **opts):
        opts.setdefault("allow_anonymous", True)
        self.mgr = cm.Manager()
        self.broker = self.mgr.mqtt_broker("mqtt://127.0.0.1:0", **opts)
        self.port = self.broker.listeners[0][1]
        self.ws_port = self.broker.listen("ws://127.0.0.1:0/mqtt")
        self.jobs = queue.Queue()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/mqtt" % self.ws_port

    def _run(self):
        while not self.stopping:
            self.mgr.poll(20)
            while not self.jobs.empty():
                fn, box, done = self.jobs.get()
                try:
                    box.append(fn())
                except BaseException as e:  # handed back to the caller
                    box.append(e)
                done.set()

    def call(self, fn):
        box, done = [], threading.Event()
        self.jobs.put((fn, box, done))
        assert done.wait(TIMEOUT)
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def stats(self):
        return self.call(lambda: self.broker.stats)

    def close(self):
        self.stopping = True
        self.thread.join(TIMEOUT)
        self.mgr.close()


@pytest.fixture
def broker():
    b = BrokerThread(sys_interval_ms=200)
    yield b
    b.close()


def need(exe):
    path = find_exe(exe)
    if path is None:
        pytest.skip("%s is not installed (scripts/deps.sh installs it)" % exe)
    return path


def mosquitto_sub(port, topic, version="mqttv311", count=1, qos=0, extra=()):
    """mosquitto_sub started; its output lines come from .communicate()."""
    argv = [need("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t",
            topic, "-C", str(count), "-W", str(TIMEOUT), "-q", str(qos), "-v", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mosquitto_pub(port, topic, message, version="mqttv311", qos=0, extra=()):
    argv = [need("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t",
            topic, "-q", str(qos), *extra]
    argv += ["-n"] if message is None else ["-m", message]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)


def wait_subscribed(broker, n):
    """Until the broker holds at least n subscriptions (the peers subscribed)."""
    deadline = time.monotonic() + TIMEOUT
    while broker.stats()["subscriptions"] < n:
        assert time.monotonic() < deadline, broker.stats()
        time.sleep(0.02)


def paho(broker, version, client_id="", clean=True, **connect_kwargs):
    """A connected paho client (network loop in its thread)."""
    import paho.mqtt.client as pm
    c = paho_client(version, client_id)
    if version != 5:
        c._clean_session = clean
    c.connected = threading.Event()
    c.disconnects = []
    c.on_connect = lambda cl, ud, flags, rc, props=None: c.connected.set()
    c.on_disconnect = lambda cl, ud, rc, props=None: c.disconnects.append(rc)
    kwargs = dict(connect_kwargs)
    if version == 5 and not clean:
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        kwargs.update(clean_start=False, properties=props)
    c.connect("127.0.0.1", broker.port, **kwargs)
    c.loop_start()
    assert c.connected.wait(TIMEOUT)
    c.pm = pm
    return c


def subscribe(c, topic, qos, **kw):
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(topic, qos, **kw)
    assert done.wait(TIMEOUT)


def stop(c):
    c.disconnect()
    c.loop_stop()


def wait_for(cond, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return cond()
        time.sleep(0.02)
    return True


def mqttjs_events(js, n_messages):
    msgs = []
    while len(msgs) < n_messages:
        ev = js.next_event()
        assert ev is not None and ev["ev"] != "error", ev
        if ev["ev"] == "message":
            msgs.append(ev)
    return msgs


# --------------------------------------------------------------- versions

def test_versions_publish_to_each_other(broker):
    """3.1, 3.1.1 and 5.0 clients of three implementations over TCP and
    WebSocket, each receiving what every other one publishes."""
    topic = unique("mix")
    subs = [mosquitto_sub(broker.port, topic + "/#", v, count=3) for v in
            ("mqttv31", "mqttv311", "mqttv5")]
    p4, p5 = paho(broker, 4), paho(broker, 5)
    subscribe(p4, topic + "/#", 0)
    subscribe(p5, topic + "/#", 0)
    js = MqttJs(broker.ws_url, options={"protocolVersion": 5}, subscribe=[(topic + "/#", 0)],
                expect=3)
    try:
        wait_subscribed(broker, 6)
        assert mosquitto_pub(broker.port, topic + "/v31", "from 3.1", "mqttv31").returncode == 0
        p5.publish(topic + "/paho5", b"from paho 5").wait_for_publish()
        js_pub = MqttJs(broker.url, options={"protocolVersion": 4},
                        publish=[(topic + "/js", b"from mqtt.js", 0, False)])
        assert any(e and e["ev"] == "done" for e in iter(js_pub.next_event, None))
        js_pub.stop()
        expected = {topic + "/v31": b"from 3.1", topic + "/paho5": b"from paho 5",
                    topic + "/js": b"from mqtt.js"}
        for s in subs:
            out, err = s.communicate(timeout=TIMEOUT)
            got = dict(line.split(" ", 1) for line in out.splitlines())
            assert {k: v.encode() for k, v in got.items()} == expected, (out, err)
        for c in (p4, p5):
            assert wait_for(lambda: len(c.received) == 3)
            assert {t: p for t, p, *_ in c.received} == expected
        assert {m["topic"]: m["payload"] for m in mqttjs_events(js, 3)} == expected
    finally:
        js.stop()
        stop(p4)
        stop(p5)


def test_broker_topic_aliases_to_mqttjs(broker):
    """Broker -> client topic aliases (v5): MQTT.js announces a Topic Alias
    Maximum of 2 and gets QoS 0 messages on three topics, four rounds.  The
    first two topics get aliases (the name once, then an empty topic plus the
    alias, which MQTT.js resolves); the third, with both aliases taken, comes
    by name every time.  Topics and payloads arrive as published."""
    base = unique("alias")
    topics = [base + "/" + t for t in ("a", "b", "c")]
    js = MqttJs(broker.url, options={"protocolVersion": 5,
                                     "properties": {"topicAliasMaximum": 2}},
                subscribe=[(base + "/#", 0)], expect=12)
    p = paho(broker, 4)
    try:
        wait_subscribed(broker, 1)
        sent = []
        for rnd in range(4):
            for t in topics:
                payload = ("%s %d" % (t[-1], rnd)).encode()
                p.publish(t, payload).wait_for_publish()
                sent.append((t, payload))
        msgs = mqttjs_events(js, 12)
        assert [(m["topic"], m["payload"]) for m in msgs] == sent
        aliases = [m["properties"].get("topicAlias") for m in msgs]
        by_topic = {}
        for (t, _), a in zip(sent, aliases):
            by_topic.setdefault(t, set()).add(a)
        assert by_topic[topics[0]] == {1} and by_topic[topics[1]] == {2}, aliases
        assert by_topic[topics[2]] == {None}, aliases
    finally:
        js.stop()
        stop(p)


def test_broker_topic_alias_not_given_by_a_dropped_message(broker):
    """A QoS 0 message too large for the client (its Maximum Packet Size) is
    dropped for it; the alias its topic would have got is not taken, so the
    next message on that topic names it (else MQTT.js could not resolve it)."""
    topic = unique("alias-drop")
    js = MqttJs(broker.url, options={"protocolVersion": 5, "properties": {
        "topicAliasMaximum": 4, "maximumPacketSize": 200}}, subscribe=[(topic, 0)], expect=2)
    p = paho(broker, 4)
    try:
        wait_subscribed(broker, 1)
        for payload in (b"x" * 400, b"small", b"again"):
            p.publish(topic, payload).wait_for_publish()
        msgs = mqttjs_events(js, 2)
        assert [(m["topic"], m["payload"]) for m in msgs] == [(topic, b"small"), (topic, b"again")]
        assert [m["properties"].get("topicAlias") for m in msgs] == [1, 1]
    finally:
        js.stop()
        stop(p)


@pytest.mark.parametrize("conf, kwargs, expected", [
    (None, {"topic_alias_out_max": 0}, [None, None, None, None]),
    ("topic_alias_out_max 0", {}, [None, None, None, None]),
    ("topic_alias_out_max 1", {}, [1, None, 1, None]),
    ("topic_alias_out_max 1", {"topic_alias_out_max": 0}, [None, None, None, None]),
], ids=["keyword 0", "config 0", "config 1", "keyword over config"])
def test_broker_topic_aliases_out_max(tmp_path, conf, kwargs, expected):
    """topic_alias_out_max, as a keyword or from the config file (keywords
    win): MQTT.js allows 5 aliases and gets two rounds of QoS 0 messages on
    two topics; with 0 it gets names only, with 1 the first topic's alias
    (1) and the second topic by name."""
    if conf is not None:
        path = tmp_path / "broker.conf"
        path.write_text(conf + "\n")
        kwargs = dict(kwargs, config=str(path))
    b = BrokerThread(**kwargs)
    base = unique("aliasmax")
    topics = [base + "/a", base + "/b"]
    js = MqttJs(b.url, options={"protocolVersion": 5, "properties": {"topicAliasMaximum": 5}},
                subscribe=[(base + "/#", 0)], expect=4)
    p = paho(b, 4)
    try:
        wait_subscribed(b, 1)
        sent = []
        for rnd in range(2):
            for t in topics:
                payload = ("%s %d" % (t[-1], rnd)).encode()
                p.publish(t, payload).wait_for_publish()
                sent.append((t, payload))
        msgs = mqttjs_events(js, 4)
        assert [(m["topic"], m["payload"]) for m in msgs] == sent
        assert [m["properties"].get("topicAlias") for m in msgs] == expected
    finally:
        js.stop()
        stop(p)
        b.close()


def test_keepalive_enforced_over_websocket(broker):
    """A silent MQTT-over-WebSocket client with keepalive 1 s is dropped
    (v5 DISCONNECT 0x8D, then the close): the broker's keepalive sweep covers
    WebSocket connections too."""
    websocket = pytest.importorskip("websocket")
    ws = websocket.create_connection(broker.ws_url, subprotocols=["mqtt"], timeout=TIMEOUT)
    try:
        connect = (b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x01\x00\x00\x00")  # v5, keepalive 1
        ws.send_binary(connect)
        assert ws.recv()[:1] == b"\x20"  # CONNACK
        frames = []
        try:
            while True:
                op, data = ws.recv_data()
                frames.append(data)
                if op == websocket.ABNF.OPCODE_CLOSE:
                    break
        except websocket.WebSocketConnectionClosedException:
            pass
        assert any(f[:1] == b"\xe0" and f[2:3] == b"\x8d" for f in frames), frames
    finally:
        ws.close()


# ------------------------------------------------------- topics, $-topics

def test_wildcards_and_dollar_topics(broker):
    base = unique("wild")
    c = paho(broker, 5)
    subscribe(c, "#", 0)
    e = paho(broker, 4)
    subscribe(e, "+/" + base, 0)
    d = paho(broker, 4)
    subscribe(d, "$app/#", 0)
    try:
        c.publish("$app/" + base, b"dollar").wait_for_publish()
        c.publish("a/" + base, b"plain").wait_for_publish()
        assert wait_for(lambda: len(d.received) == 1)
        assert wait_for(lambda: any(t == "a/" + base for t, *_ in c.received))
        assert wait_for(lambda: e.received)
        assert [t for t, *_ in e.received] == ["a/" + base]  # + skips $app
        assert not [t for t, *_ in c.received if t.startswith("$")]  # # skips $-topics
        assert d.received[0][:2] == ("$app/" + base, b"dollar")
    finally:
        stop(c)
        stop(d)
        stop(e)


def test_sys_topics(broker):
    # the retained value first, then the next period's (counting this client)
    s = mosquitto_sub(broker.port, "$SYS/broker/clients/connected", "mqttv5", count=2)
    out, err = s.communicate(timeout=TIMEOUT)
    topic, value = out.splitlines()[-1].split()
    assert topic == "$SYS/broker/clients/connected" and int(value) >= 1, err
    s = mosquitto_sub(broker.port, "$SYS/broker/uptime", count=1)
    assert s.communicate(timeout=TIMEOUT)[0].startswith("$SYS/broker/uptime")


# --------------------------------------------------------------- retained

def test_retained_set_replace_clear(broker):
    topic = unique("ret")
    assert mosquitto_pub(broker.port, topic, "one", extra=["-r"]).returncode == 0
    assert mosquitto_pub(broker.port, topic, "two", "mqttv5", extra=["-r"]).returncode == 0
    js = MqttJs(broker.ws_url, subscribe=[(topic, 1)], expect=1)
    try:
        m = mqttjs_events(js, 1)[0]
        assert (m["payload"], m["retain"]) == (b"two", True)
    finally:
        js.stop()
    assert mosquitto_pub(broker.port, topic, None, extra=["-r"]).returncode == 0  # clear
    s = mosquitto_sub(broker.port, topic, count=1, extra=["-W", "1"])
    out, _ = s.communicate(timeout=TIMEOUT)
    assert out == "" and s.returncode != 0  # nothing retained: timed out


# -------------------------------------------------------------------- QoS

@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_end_to_end_and_downgrade(broker, sub_qos):
    topic = unique("qos")
    c = paho(broker, 5)
    subscribe(c, topic, sub_qos)
    try:
        for q in (0, 1, 2):
            r = mosquitto_pub(broker.port, topic, "q%d" % q, "mqttv311", qos=q)
            assert r.returncode == 0, r.stderr
        assert wait_for(lambda: len(c.received) == 3)
        assert [(p, qos) for _, p, qos, *_ in c.received] == \
            [(b"q%d" % q, min(q, sub_qos)) for q in (0, 1, 2)]
    finally:
        stop(c)


# --------------------------------------------- sessions, offline, takeover

@pytest.mark.parametrize("version", [4, 5])
def test_persistent_session_offline_queue(broker, version):
    topic, cid = unique("offline"), unique("durable")
    c = paho(broker, version, cid, clean=False)
    subscribe(c, topic, 2)
    stop(c)
    assert wait_for(lambda: broker.stats()["clients_disconnected"] >= 1)
    for i in range(5):
        assert mosquitto_pub(broker.port, topic, "m%d" % i, qos=1 + i % 2).returncode == 0
    assert broker.stats()["queued"] >= 5
    c = paho(broker, version, cid, clean=False)
    try:
        assert wait_for(lambda: len(c.received) == 5)
        # in order per QoS (paho hands QoS 2 messages over at PUBREL, later)
        for q in (1, 2):
            assert [p for _, p, qos, *_ in c.received if qos == q] == \
                [b"m%d" % i for i in range(5) if 1 + i % 2 == q]
    finally:
        stop(c)


def test_session_takeover():
    ends = []
    broker = BrokerThread(on_client=lambda cid, up, reason, why: ends.append((cid, up, reason)))
    cid = unique("same")
    first = MqttJs(broker.ws_url, options={"clientId": cid, "protocolVersion": 5},
                   subscribe=[("x/" + cid, 0)], wait_stdin=True)
    try:
        assert first.next_event()["ev"] == "connect"
        second = paho(broker, 5, cid)
        # the old connection ended with v5 0x8E "session taken over", under its own client id
        assert wait_for(lambda: any(i == cid and not up and r == 0x8E for i, up, r in ends)), ends
        assert broker.call(lambda: broker.broker.clients[cid]["version"]) == 5
        stop(second)
    finally:
        first.stop()
        broker.close()


# ------------------------------------------------------------------ wills

def test_will_on_abrupt_close(broker):
    topic = unique("will")
    s = mosquitto_sub(broker.port, topic, "mqttv31")
    wait_subscribed(broker, 1)
    c = paho_client(4, unique("dying"))
    c.will_set(topic, b"gone", 1)
    c.connect("127.0.0.1", broker.port)
    c.loop(1)
    c.socket().close()  # no DISCONNECT: the will goes out
    out, _ = s.communicate(timeout=TIMEOUT)
    assert out.strip() == "%s gone" % topic


def test_will_delay_cancelled_by_reconnect(broker):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    topic, cid = unique("wdelay"), unique("flaky")
    watcher = paho(broker, 5)
    subscribe(watcher, topic, 0)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    for reconnect in (True, False):
        c = paho_client(5, cid)
        c.will_set(topic, b"late will", 0, properties=wp)
        cp = Properties(PacketTypes.CONNECT)
        cp.SessionExpiryInterval = 60
        c.connect("127.0.0.1", broker.port, clean_start=False, properties=cp)
        c.loop(1)
        c.socket().close()
        if reconnect:
            again = paho(broker, 5, cid, clean=False)
            time.sleep(3)  # past the will delay: no will was published
            assert watcher.received == []
            stop(again)  # normal DISCONNECT: no will either
    # the second time nobody came back: the will follows its delay
    assert wait_for(lambda: len(watcher.received) == 1)
    assert watcher.received[0][:2] == (topic, b"late will")
    stop(watcher)


# --------------------------------------------------------------------- v5

def test_v5_properties_pass_through(broker):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    topic = unique("props")
    js = MqttJs(broker.ws_url, options={"protocolVersion": 5}, subscribe=[(topic, 1)], expect=1)
    sub = paho(broker, 5)
    subscribe(sub, topic, 1)
    pub = paho(broker, 5)
    try:
        wait_subscribed(broker, 2)
        p = Properties(PacketTypes.PUBLISH)
        p.UserProperty = [("k", "v"), ("k", "w")]
        p.ResponseTopic = "reply/here"
        p.CorrelationData = b"\x01\x02"
        p.ContentType = "text/plain"
        p.PayloadFormatIndicator = 1
        pub.publish(topic, b"body", 1, properties=p).wait_for_publish()
        assert wait_for(lambda: sub.received)
        props = sub.received[0][4]
        assert [list(kv) for kv in props["UserProperty"]] == [["k", "v"], ["k", "w"]]
        assert props["ResponseTopic"] == "reply/here"
        assert props["CorrelationData"] == "0102"
        assert props["ContentType"] == "text/plain"
        m = mqttjs_events(js, 1)[0]
        assert m["properties"]["userProperties"] == {"k": ["v", "w"]}
        assert m["properties"]["responseTopic"] == "reply/here"
    finally:
        js.stop()
        stop(sub)
        stop(pub)


def test_shared_subscription_round_robin(broker):
    group = unique("g")
    workers = [paho(broker, 5) for _ in range(2)]
    for w in workers:
        subscribe(w, "$share/%s/jobs/#" % group, 1)
    try:
        for i in range(10):
            assert mosquitto_pub(broker.port, "jobs/%d" % i, "j%d" % i, "mqttv5", 1).returncode == 0
        assert wait_for(lambda: sum(len(w.received) for w in workers) == 10)
        got = sorted(p for w in workers for _, p, *_ in w.received)
        assert got == sorted(b"j%d" % i for i in range(10))  # each once
        assert all(len(w.received) == 5 for w in workers)  # round robin
    finally:
        for w in workers:
            stop(w)


# ------------------------------------------------------- limits, bad input

def test_max_packet_size():
    b = BrokerThread(max_packet_size=1000)
    try:
        r = mosquitto_pub(b.port, "big", "x" * 2000, "mqttv311", qos=1)
        assert r.returncode != 0
        r = mosquitto_pub(b.port, "small", "x" * 100, "mqttv311", qos=1)
        assert r.returncode == 0
    finally:
        b.close()


def test_bad_input_closes_only_that_client(broker):
    topic = unique("ok")
    good = paho(broker, 5)
    subscribe(good, topic, 1)
    bad_packets = [b"\x30\x05\x00\x01a",                     # PUBLISH before CONNECT
                   b"\xff\xff\xff\xff\xff",                    # not MQTT
                   b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
                   b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"]  # second CONNECT
    try:
        for data in bad_packets:
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT)
            s.sendall(data)
            rest = b""
            while True:
                chunk = s.recv(100)
                if not chunk:
                    break
                rest += chunk
            s.close()  # the broker closed it
        assert mosquitto_pub(broker.port, topic, "still fine", qos=1).returncode == 0
        assert wait_for(lambda: good.received)
        assert good.received[0][1] == b"still fine" and not good.disconnects
    finally:
        stop(good)
