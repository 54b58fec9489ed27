"""Manager.mqtt_broker() / MqttBroker: the Python face of the C broker.
Clients are our own MQTT client on the same Manager (mqtt_helpers.Client),
so every test runs one loop; the peers' tests are test_mqtt_broker_peers.py."""
import asyncio
import gc
import os
import socket
import weakref

import pytest

import cymongoose as cm
from core_helpers import poll_until
from mqtt_helpers import Client, unique



@pytest.fixture
def mgr():
    m = cm.Manager()
    yield m
    m.close()


def url_of(broker, scheme="mqtt"):
    for url, port in broker.listeners:
        if url.startswith(scheme + "://"):
            host = url.split("://", 1)[1].split("/", 1)
            path = "/" + host[1] if len(host) > 1 else ""
            return "%s://127.0.0.1:%d%s" % (scheme, port, path)
    raise AssertionError(broker.listeners)


def test_publish_subscribe_stats_and_clients(mgr):
    seen = []
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True,
                        on_client=lambda *a: seen.append(a))
    url = url_of(b)
    sub = Client(mgr, url, client_id="sub-1").wait_open()
    pub = Client(mgr, url, client_id="pub-1", version=5).wait_open()
    assert set(b.clients) == {"sub-1", "pub-1"}
    assert b.clients["pub-1"]["version"] == 5
    assert b.clients["sub-1"]["address"][0] == "127.0.0.1"
    assert sub.sub("t/+", 1) == [1]
    pub.conn.mqtt_pub("t/x", b"hello", 1)
    assert sub.wait_msgs(1)[0][:3] == ("t/x", b"hello", 1)
    st = b.stats
    assert st["clients_connected"] == 2 and st["subscriptions"] == 1
    assert st["msgs_received"] >= 1 and st["msgs_sent"] >= 1
    pub.conn.mqtt_disconnect()
    assert poll_until(mgr, lambda: "pub-1" not in b.clients)
    assert ("pub-1", True, 0, "") in [(a[0], a[1], a[2], "") for a in seen]
    assert any(a[0] == "pub-1" and a[1] is False for a in seen)


def test_anonymous_refused_by_default(mgr):
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0")
    c = Client(mgr, url_of(b))
    assert poll_until(mgr, lambda: c.closed)
    assert c.opened is None and c.errors
    assert b.stats["connections_refused"] == 1


def test_authenticate_callback(mgr):
    calls = []

    def auth(client_id, username, password):
        calls.append((client_id, username, password))
        return username == "alice" and password == b"secret"
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", authenticate=auth)
    ok = Client(mgr, url_of(b), client_id="a", username="alice", password="secret").wait_open()
    bad = Client(mgr, url_of(b), client_id="b", username="alice", password="wrong")
    assert poll_until(mgr, lambda: bad.closed)
    assert bad.opened is None
    assert ("a", "alice", b"secret") in calls
    assert ok.opened == 0


def test_authenticate_exception_goes_to_error_handler():
    errors = []
    m = cm.Manager(error_handler=errors.append)
    try:
        b = m.mqtt_broker("mqtt://127.0.0.1:0", authenticate=lambda *a: 1 / 0)
        c = Client(m, url_of(b), username="x", password="y")
        assert poll_until(m, lambda: c.closed)
        assert c.opened is None
        assert any(isinstance(e, ZeroDivisionError) for e in errors)
    finally:
        m.close()


def test_on_message_and_inject(mgr):
    got = []
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True,
                        on_message=lambda *a: got.append(a))
    sub = Client(mgr, url_of(b), client_id="s").wait_open()
    sub.sub("app/#", 2)
    assert b.publish("app/one", "payload", qos=2) == 1
    assert sub.wait_msgs(1)[0][:3] == ("app/one", b"payload", 2)
    pub = Client(mgr, url_of(b), client_id="p").wait_open()
    pub.conn.mqtt_pub("app/two", b"x", 0, True)
    assert poll_until(mgr, lambda: len(got) == 2)
    assert got[0] == ("app/one", b"payload", 2, False, None)
    assert got[1] == ("app/two", b"x", 0, True, "p")
    with pytest.raises(ValueError):
        b.publish("bad/#", b"")
    with pytest.raises(ValueError):
        b.publish("t", b"", qos=3)


def test_retained_from_python_reaches_late_subscriber(mgr):
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True)
    b.publish("cfg/a", b"1", retain=True)
    b.publish("cfg/a", b"2", retain=True)
    sub = Client(mgr, url_of(b)).wait_open()
    sub.sub("cfg/#")
    m = sub.wait_msgs(1)[0]
    assert (m.topic, m.data, m.retain) == ("cfg/a", b"2", True)
    before = b.stats["retained"]
    b.publish("cfg/a", b"", retain=True)  # clears
    assert b.stats["retained"] == before - 1
    late = Client(mgr, url_of(b)).wait_open()
    late.sub("cfg/#")
    poll_until(mgr, lambda: False, timeout=0.2)
    assert late.msgs == []


def test_kick(mgr):
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True)
    c = Client(mgr, url_of(b), client_id="victim", version=5).wait_open()
    assert b.kick("victim") is True
    assert poll_until(mgr, lambda: c.closed)
    assert b.kick("nobody") is False


def test_listeners_ws_beside_http_and_websocket_servers(mgr):
    """One loop: an HTTP server, a WebSocket echo server and the broker (mqtt
    and ws listeners), all answering."""
    def http(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            if data.uri == "/ws":
                conn.ws_upgrade(data)
            else:
                conn.reply(200, "hi")
        elif ev == cm.MG_EV_WS_MSG:
            conn.ws_send(data.data, cm.WEBSOCKET_OP_TEXT)
    h = mgr.listen("http://127.0.0.1:0", http)
    hport = h.local_addr[1]
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True)
    wport = b.listen("ws://127.0.0.1:0/mqtt")
    assert b.listeners[1] == ("ws://127.0.0.1:0/mqtt", wport)
    over_ws = Client(mgr, "ws://127.0.0.1:%d/mqtt" % wport, client_id="ws-client").wait_open()
    over_ws.sub("mix/#", 1)
    tcp = Client(mgr, url_of(b)).wait_open()
    tcp.conn.mqtt_pub("mix/1", b"a", 1)
    assert over_ws.wait_msgs(1)[0].data == b"a"
    got = {}

    def client(conn, ev, data):
        if ev == cm.MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        elif ev == cm.MG_EV_HTTP_MSG:
            body = data.body_bytes
            got["http"] = body() if callable(body) else body
    mgr.connect("http://127.0.0.1:%d" % hport, client, http=True)

    def ws(conn, ev, data):
        if ev == cm.MG_EV_WS_OPEN:
            conn.ws_send(b"echo", cm.WEBSOCKET_OP_TEXT)
        elif ev == cm.MG_EV_WS_MSG:
            got["ws"] = data.data
    mgr.ws_connect("ws://127.0.0.1:%d/ws" % hport, ws)
    assert poll_until(mgr, lambda: len(got) == 2), got
    assert bytes(got["http"]) == b"hi" and bytes(got["ws"]) == b"echo"


def test_bad_options(mgr):
    with pytest.raises(ValueError):
        mgr.mqtt_broker(None, slow_policy="maybe")
    with pytest.raises(ValueError):
        mgr.mqtt_broker(None, fsync="sometimes")
    with pytest.raises(ValueError):
        mgr.mqtt_broker(None, max_packet_size=-1)
    with pytest.raises(TypeError):
        mgr.mqtt_broker(None, on_client=5)
    with pytest.raises(TypeError):
        mgr.mqtt_broker(None, unknown_option=1)
    with pytest.raises(ValueError):
        mgr.mqtt_broker("mqtts://127.0.0.1:0")  # TLS without certificate
    with pytest.raises(TypeError):
        cm.MqttBroker()
    b = mgr.mqtt_broker(None)
    with pytest.raises(ValueError):
        b.listen("bogus://x")
    assert b.listeners == []


def test_port_in_use_is_oserror(mgr):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        with pytest.raises(OSError):
            mgr.mqtt_broker("mqtt://127.0.0.1:%d" % s.getsockname()[1])
    finally:
        s.close()


def test_max_connections_and_packet_size(mgr):
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True, max_connections=1,
                        max_packet_size=256)
    first = Client(mgr, url_of(b), client_id="one").wait_open()
    second = Client(mgr, url_of(b), client_id="two", version=5)
    assert poll_until(mgr, lambda: second.closed)
    assert second.opened is None
    first.conn.mqtt_pub("big", b"x" * 1000)
    assert poll_until(mgr, lambda: first.closed)  # 0x95 packet too large
    assert b.stats["connections_refused"] >= 1


def test_close_and_context_manager(mgr):
    with mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True) as b:
        c = Client(mgr, url_of(b), version=5).wait_open()
    assert b.closed and b.manager is None
    assert poll_until(mgr, lambda: c.closed)
    with pytest.raises(RuntimeError):
        b.listen("mqtt://127.0.0.1:0")
    with pytest.raises(RuntimeError):
        b.stats
    b.close()  # idempotent


def test_close_from_own_callback_is_deferred(mgr):
    holder = {}

    def on_client(client_id, connected, reason, why):
        holder["b"].close()
    b = holder["b"] = mgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True,
                                      on_client=on_client)
    c = Client(mgr, url_of(b))
    assert poll_until(mgr, lambda: b.closed and c.closed)


def test_manager_close_from_broker_callback():
    m = cm.Manager()
    b = m.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True,
                      on_message=lambda *a: m.close())
    b.publish("t", b"x")  # the callback closes the manager once publish is back
    assert m.closed and b.closed


def test_manager_close_closes_brokers_and_frees_them():
    m = cm.Manager()
    b = m.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True,
                      on_client=lambda *a: m)  # a cycle through the manager
    ref = weakref.ref(b)
    del b
    assert ref() is not None  # the manager keeps an open broker
    m.close()
    gc.collect()
    assert ref() is None


def test_unreferenced_manager_with_broker_is_collected():
    m = cm.Manager()
    b = m.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True, on_message=lambda *a: (m, b))
    refs = [weakref.ref(m), weakref.ref(b)]
    del m, b
    gc.collect()
    assert [r() for r in refs] == [None, None]


def password_line(user, password, iterations=1000):
    """A password file line as cymongoose-passwd writes it (docs/mqtt-broker.md):
    NAME:$pbkdf2-sha512$ITERATIONS$SALT$HASH, base64, PBKDF2-HMAC-SHA-512."""
    import base64
    import hashlib
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return "%s:$pbkdf2-sha512$%d$%s$%s\n" % (user, iterations, base64.b64encode(salt).decode(),
                                             base64.b64encode(digest).decode())


def test_password_and_acl_files(mgr, tmp_path):
    pw = tmp_path / "passwd"
    pw.write_text(password_line("alice", "s3cret"))
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", password_file=str(pw), acl_file=acl)
    ok = Client(mgr, url_of(b), username="alice", password="s3cret", version=5).wait_open()
    assert ok.sub("alice/x", 1) == [1]
    assert ok.sub("bob/x", 1) == [0x87]
    bad = Client(mgr, url_of(b), username="alice", password="nope")
    assert poll_until(mgr, lambda: bad.closed) and bad.opened is None


def test_config_file(mgr, tmp_path):
    conf = tmp_path / "broker.conf"
    conf.write_text("listener mqtt://127.0.0.1:0\nallow_anonymous true\nmax_packet_size 1000\n")
    b = mgr.mqtt_broker(None, config=str(conf))
    assert len(b.listeners) == 1
    c = Client(mgr, url_of(b)).wait_open()
    assert c.opened == 0
    bad = tmp_path / "bad.conf"
    bad.write_text("frobnicate yes\n")
    with pytest.raises(ValueError, match="bad.conf:1"):
        mgr.mqtt_broker(None, config=bad)


def test_persistence_across_brokers(tmp_path):
    path = tmp_path / "state.log"
    topic = unique("keep")
    m = cm.Manager()
    b = m.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True, persistence=path)
    c = Client(m, url_of(b), client_id="durable", clean_session=False).wait_open()
    c.sub(topic, 1)
    c.conn.mqtt_disconnect()
    assert poll_until(m, lambda: c.closed)
    b.publish(topic, b"while away", qos=1)
    b.publish("ret/" + topic, b"kept", retain=True)
    m.close()  # closes the broker: the log is flushed
    m = cm.Manager()
    try:
        b = m.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True, persistence=path)
        assert b.stats["retained"] >= 1
        c = Client(m, url_of(b), client_id="durable", clean_session=False).wait_open()
        assert c.wait_msgs(1)[0][:3] == (topic, b"while away", 1)
    finally:
        m.close()


def test_async_manager():
    async def main():
        async with cm.AsyncManager() as amgr:
            b = amgr.mqtt_broker("mqtt://127.0.0.1:0", allow_anonymous=True)
            got = asyncio.get_running_loop().create_future()

            def h(conn, ev, data):
                if ev == cm.MG_EV_MQTT_OPEN:
                    conn.mqtt_sub("a/#", 1)
                elif ev == cm.MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK
                    b.publish("a/b", b"hi", qos=1)
                elif ev == cm.MG_EV_MQTT_MSG and not got.done():
                    got.set_result(bytes(data.data))
            amgr.mqtt_connect(url_of(b), h)
            assert await asyncio.wait_for(got, 10) == b"hi"
            return b
    b = asyncio.run(main())
    assert b.closed
