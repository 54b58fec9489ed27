"""The Python face of MQTT without a broker: exports, signatures, argument
checks, no-ops on connections that do not speak MQTT, closed connections."""
import inspect

import pytest

import cymongoose as cm
from core_helpers import poll_until


def test_mqtt_message_is_exported_and_not_instantiable():
    assert "MqttMessage" in cm.__all__
    assert cm.MqttMessage is cm._mongoose.MqttMessage
    with pytest.raises(TypeError):
        cm.MqttMessage()


def test_signatures_name_every_keyword():
    sig = inspect.signature(cm.Manager.mqtt_connect)
    assert list(sig.parameters)[1:8] == ["url", "handler", "client_id", "username", "password",
                                         "clean_session", "keepalive"]
    for kw in ("version", "will_topic", "will_message", "will_qos", "will_retain",
               "will_properties", "properties", "tls"):
        assert sig.parameters[kw].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(cm.Connection.mqtt_pub).parameters)[1:5] == [
        "topic", "message", "qos", "retain"]
    assert list(inspect.signature(cm.Connection.mqtt_sub).parameters)[1:3] == ["topic", "qos"]
    assert list(inspect.signature(cm.Manager.mqtt_listen).parameters)[1:3] == ["url", "handler"]


@pytest.fixture
def raw_conn():
    with cm.Manager() as mgr:
        yield mgr.listen("tcp://127.0.0.1:0")


def test_mqtt_methods_are_no_ops_on_other_connections(raw_conn):
    assert raw_conn.mqtt_pub("a/b", b"x", 1) == 0
    assert raw_conn.mqtt_pub(topic="a/b", message="x", qos=2, retain=True) == 0
    assert raw_conn.mqtt_sub("a/#", 1) == 0
    assert raw_conn.mqtt_unsub("a/#") == 0
    assert raw_conn.mqtt_ping() is None
    assert raw_conn.mqtt_pong() is None
    assert raw_conn.mqtt_disconnect() is None
    assert raw_conn.send_len == 0 and not raw_conn.is_closing


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "#", "a\x00b"])
def test_pub_rejects_invalid_topic_names(raw_conn, topic):
    with pytest.raises(ValueError, match="topic"):
        raw_conn.mqtt_pub(topic, b"x")


@pytest.mark.parametrize("topic", ["", "a/#/b", "a+", "#a", "a/b#"])
def test_sub_rejects_invalid_filters(raw_conn, topic):
    with pytest.raises(ValueError, match="filter"):
        raw_conn.mqtt_sub(topic)
    with pytest.raises(ValueError, match="filter"):
        raw_conn.mqtt_unsub(topic)


def test_qos_and_argument_checks(raw_conn):
    for bad in (-1, 3):
        with pytest.raises(ValueError, match="qos"):
            raw_conn.mqtt_pub("t", b"x", bad)
        with pytest.raises(ValueError, match="qos"):
            raw_conn.mqtt_sub("t", bad)
    with pytest.raises(TypeError):
        raw_conn.mqtt_pub("t")
    with pytest.raises(TypeError):
        raw_conn.mqtt_pub("t", b"x", 0, False, None)  # properties is keyword-only
    with pytest.raises(TypeError, match="unexpected keyword"):
        raw_conn.mqtt_pub("t", b"x", qoss=1)
    with pytest.raises(TypeError, match="multiple values"):
        raw_conn.mqtt_pub("t", b"x", topic="u")
    with pytest.raises(TypeError):
        raw_conn.mqtt_pub(3, b"x")
    with pytest.raises(ValueError, match="retain_handling"):
        raw_conn.mqtt_sub("t", retain_handling=3)
    with pytest.raises(ValueError, match="reason_code"):
        raw_conn.mqtt_disconnect(256)


@pytest.mark.parametrize("props, err", [
    ({"no_such_property": 1}, ValueError),
    ({0x7F: 1}, ValueError),
    ({"receive_maximum": 70000}, ValueError),       # a short
    ({"payload_format_indicator": 256}, ValueError),  # a byte
    ({"message_expiry_interval": "soon"}, TypeError),
    ({"content_type": 5}, TypeError),
    ({"content_type": "a\x00b"}, ValueError),        # NUL is not allowed in MQTT strings
    ({"user_property": [("only-a-name",)]}, ValueError),
    ({3.5: 1}, TypeError),
    (42, TypeError),
])
def test_property_conversion_errors(raw_conn, props, err):
    with pytest.raises(err):
        raw_conn.mqtt_pub("t", b"x", properties=props)


def test_property_shapes_accepted(raw_conn):
    for props in ({"content_type": "a", "user_property": [("k", "v"), ("k", "w")]},
                  {0x03: "a", 0x26: {"k": "v"}, "correlation_data": b"\x00\x01"},
                  [("message_expiry_interval", 60), ("user_property", ("k", "v"))],
                  [{"id": 0x26, "iv": 0, "key": "k", "val": "v"},
                   {"id": 0x02, "iv": 5, "key": "", "val": ""}]):
        assert raw_conn.mqtt_pub("t", b"x", properties=props) == 0


def test_mqtt_connect_argument_checks():
    with cm.Manager() as mgr:
        for kwargs, err in (({"version": 3}, ValueError), ({"keepalive": -1}, ValueError),
                            ({"keepalive": 65536}, ValueError), ({"will_qos": 3}, ValueError),
                            ({"will_topic": "a/#"}, ValueError), ({"tls": "yes"}, TypeError),
                            ({"properties": {"receive_maximum": 5}}, ValueError),  # needs v5
                            ({"properties": {"bogus": 1}, "version": 5}, ValueError)):
            with pytest.raises(err):
                mgr.mqtt_connect("mqtt://127.0.0.1:1", **kwargs)
        assert mgr.connections == ()
    with pytest.raises(RuntimeError, match="closed"):
        mgr.mqtt_connect("mqtt://127.0.0.1:1")


def test_methods_raise_after_close():
    closed = []
    with cm.Manager() as mgr:
        lst = mgr.mqtt_listen("mqtt://127.0.0.1:0", lambda c, ev, d: closed.append(c)
                              if ev == cm.MG_EV_CLOSE else None)
    assert closed == [lst]
    for call in (lambda: lst.mqtt_pub("t", b"x"), lambda: lst.mqtt_sub("t"),
                 lambda: lst.mqtt_unsub("t"), lst.mqtt_ping, lst.mqtt_pong, lst.mqtt_disconnect):
        with pytest.raises(RuntimeError, match="Connection has been closed"):
            call()


def test_mqtt_listen_port_zero_and_bad_url():
    with cm.Manager() as mgr:
        lst = mgr.mqtt_listen("mqtt://127.0.0.1:0")
        assert lst.is_listening and lst.local_addr[1] > 0
        with pytest.raises(RuntimeError):
            mgr.mqtt_listen("mqtt://127.0.0.1:%d" % lst.local_addr[1])  # port taken


def test_connect_to_a_closed_port_is_an_error_event():
    events = []
    with cm.Manager() as mgr:
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        mgr.mqtt_connect("mqtt://127.0.0.1:%d" % port,
                         lambda c, ev, d: events.append((ev, d)) if ev in (
                             cm.MG_EV_ERROR, cm.MG_EV_CLOSE, cm.MG_EV_MQTT_OPEN) else None)
        assert poll_until(mgr, lambda: any(ev == cm.MG_EV_CLOSE for ev, _ in events))
    assert [ev for ev, _ in events] == [cm.MG_EV_ERROR, cm.MG_EV_CLOSE]
