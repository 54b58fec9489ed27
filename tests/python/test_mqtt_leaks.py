"""MQTT objects leave nothing behind: message views, properties, connections
(reference counts, Python objects, descriptors, C heap), and views kept past
their handler read as empty."""
import gc
import sys

import cymongoose as cm
from core_helpers import poll_until
from mqtt_helpers import SUBACK, unique
from mqtt_peers import mosquitto  # noqa: F401  (fixture)
from test_leaks import c_heap_in_use, open_fds


class Recorder:
    """A handler that keeps nothing but counts."""

    def __init__(self, topic):
        self.topic = topic
        self.opened = self.msgs = self.subacks = self.closed = 0

    def __call__(self, conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            self.opened += 1
            conn.mqtt_sub(self.topic, 1, properties=None)
        elif ev == cm.MG_EV_MQTT_CMD and data.cmd == SUBACK:
            self.subacks += 1
            conn.mqtt_pub(self.topic, b"x" * 1000, 1)
        elif ev == cm.MG_EV_MQTT_MSG:
            self.msgs += 1
            data.properties(), data.topic, data.data, data.codes(), data.topics()
            conn.mqtt_disconnect()
        elif ev == cm.MG_EV_CLOSE:
            self.closed += 1


def cycles(mgr, url, handler, n, version):
    for i in range(n):
        mgr.mqtt_connect(url, handler, version=version, client_id="leak-%d" % i,
                         will_topic="w/x", will_message=b"w",
                         properties={"user_property": [("a", "b")]} if version == 5 else None)
        assert poll_until(mgr, lambda: handler.closed == i + 1)


def test_connections_and_messages_leave_nothing_behind(mosquitto):
    for version in (4, 5):
        handler = Recorder(unique("leak"))
        mgr = cm.Manager()
        cycles(mgr, mosquitto.url, handler, 20, version)  # warm-up
        gc.collect()
        refs, objects, fds, heap = (sys.getrefcount(handler), len(gc.get_objects()), open_fds(),
                                    c_heap_in_use())
        handler.closed = 0
        cycles(mgr, mosquitto.url, handler, 200, version)
        gc.collect()
        assert handler.msgs == 220 and handler.subacks == 220
        assert sys.getrefcount(handler) == refs
        assert len(gc.get_objects()) - objects < 50
        assert open_fds() == fds
        assert c_heap_in_use() - heap < 512 * 1024
        mgr.close()


def test_publish_with_properties_does_not_leak(mosquitto):
    with cm.Manager() as mgr:
        opened = []
        conn = mgr.mqtt_connect(mosquitto.url, lambda c, ev, d: opened.append(d)
                                if ev == cm.MG_EV_MQTT_OPEN else None, version=5)
        assert poll_until(mgr, lambda: opened)
        props = {"user_property": [("k" * 10, "v" * 100)] * 5, "content_type": "t/x",
                 "correlation_data": b"\x00" * 50, "message_expiry_interval": 60}
        topic = unique("propleak")

        def burst():
            for _ in range(500):
                conn.mqtt_pub(topic, b"p", 0, properties=props)
                try:
                    conn.mqtt_pub(topic, b"p", 0, properties={"user_property": [("k",)]})
                except ValueError:
                    pass
            mgr.poll(0)

        burst()
        gc.collect()
        heap, objects = c_heap_in_use(), len(gc.get_objects())
        for _ in range(10):
            burst()
        gc.collect()
        assert c_heap_in_use() - heap < 256 * 1024
        assert len(gc.get_objects()) - objects < 50


def test_views_kept_after_the_handler_read_empty(mosquitto):
    kept = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            conn.mqtt_sub(topic, 1)
        elif ev == cm.MG_EV_MQTT_CMD:
            kept.append(data)
            if data.cmd == SUBACK:
                assert data and data.codes() == [1]
                conn.mqtt_pub(topic, b"payload", 1, properties={"content_type": "x"})
        elif ev == cm.MG_EV_MQTT_MSG:
            assert data and data.data == b"payload" and data.properties()
            kept.append(data)
            assert data.cmd == 3  # still valid: the view is alive during the call
            got_msg.append(True)

    topic = unique("views")
    got_msg = []
    with cm.Manager() as mgr:
        mgr.mqtt_connect(mosquitto.url, handler, version=5)
        assert poll_until(mgr, lambda: got_msg)
    for v in kept:
        assert not v
        assert (v.topic, v.data, v.text, v.id, v.cmd, v.qos, v.ack, v.reason_code, v.retain,
                v.dup, v.version, v.client_id) == ("", b"", "", 0, 0, 0, 0, 0, False, False, 0, "")
        assert v.properties() == [] and v.topics() == [] and v.codes() == []
        assert "expired" in repr(v)


def test_session_is_kept_while_in_use_and_released_after_close(mosquitto):
    with cm.Manager() as mgr:
        session = cm.MqttSession(max_inflight=5)
        refs = sys.getrefcount(session)
        closed = []
        conn = mgr.mqtt_connect(mosquitto.url, lambda c, ev, d: closed.append(ev)
                                if ev == cm.MG_EV_CLOSE else None, session=session,
                                clean_session=False, client_id=unique("sess"))
        assert sys.getrefcount(session) == refs + 1 and session.in_use
        conn.mqtt_pub("t/" + unique("s"), b"x", 1)
        conn.close()
        assert poll_until(mgr, lambda: closed)
        assert sys.getrefcount(session) == refs and not session.in_use
        # Dropped by the application while a connection still uses it: freed after CLOSE.
        mgr.mqtt_connect(mosquitto.url, session=session, clean_session=False,
                         client_id=unique("sess"))
        del session
        gc.collect()
    heap = c_heap_in_use()
    for _ in range(200):
        s = cm.MqttSession()
        del s
    assert c_heap_in_use() - heap < 64 * 1024
