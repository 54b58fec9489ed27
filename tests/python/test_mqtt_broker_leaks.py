"""MqttBroker leaves nothing behind: brokers created and closed, clients
through them with every callback set, options and errors (reference counts,
Python objects, descriptors, C heap)."""
import gc
import sys

import pytest

import cymongoose as cm
from core_helpers import poll_until
from test_leaks import c_heap_in_use, open_fds


class Callbacks:
    """on_client, on_message and authenticate at once; keeps only counts."""

    def __init__(self):
        self.clients = self.messages = self.auths = 0

    def on_client(self, client_id, connected, reason, why):
        self.clients += 1

    def on_message(self, topic, payload, qos, retain, client_id):
        self.messages += 1

    def authenticate(self, client_id, username, password):
        self.auths += 1
        return True


def one_round(cb, n_clients=5):
    mgr = cm.Manager()
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0", on_client=cb.on_client, on_message=cb.on_message,
                        authenticate=cb.authenticate, sys_interval_ms=10)
    port = b.listen("ws://127.0.0.1:0/mqtt")
    url = "mqtt://127.0.0.1:%d" % b.listeners[0][1]
    got = []

    def h(conn, ev, data):
        if ev == cm.MG_EV_MQTT_OPEN:
            conn.mqtt_sub("t/#", 1)
        elif ev == cm.MG_EV_MQTT_CMD and data.cmd == 9:
            conn.mqtt_pub("t/x", b"x" * 100, 1, True)
        elif ev == cm.MG_EV_MQTT_MSG:
            got.append(1)
            conn.mqtt_disconnect()
    for i in range(n_clients):
        mgr.mqtt_connect(url if i % 2 else "ws://127.0.0.1:%d/mqtt" % port, h, username="u",
                         password="p", version=4 + i % 2, client_id="c%d" % i)
    assert poll_until(mgr, lambda: len(got) >= n_clients)
    b.stats, b.clients, b.listeners, repr(b)
    b.publish("t/y", "inject", qos=1, retain=True)
    b.kick("nobody")
    if n_clients % 2:
        b.close()  # explicit close, or the manager's
    mgr.close()


def test_brokers_and_clients_leave_nothing_behind():
    cb = Callbacks()
    for _ in range(5):
        one_round(cb)  # warm-up
    gc.collect()
    refs = [sys.getrefcount(f) for f in (cb, cb.__class__.on_client)]
    objects, fds, heap = len(gc.get_objects()), open_fds(), c_heap_in_use()
    for i in range(40):
        one_round(cb, 5 + i % 2)
    gc.collect()
    assert [sys.getrefcount(f) for f in (cb, cb.__class__.on_client)] == refs
    assert len(gc.get_objects()) - objects < 50
    assert open_fds() == fds
    assert c_heap_in_use() - heap < 512 * 1024
    assert cb.auths >= 200 and cb.messages > 0


def test_option_errors_leave_nothing_behind(tmp_path):
    bad_conf = tmp_path / "bad.conf"
    bad_conf.write_text("nonsense\n")
    mgr = cm.Manager()
    cb = Callbacks()

    def attempts():
        for kwargs in ({"slow_policy": "x"}, {"config": bad_conf}, {"password_file": tmp_path / "none"},
                       {"max_inflight": 2 ** 40}, {"tls": "not tls"}, {"on_message": 3}):
            with pytest.raises((ValueError, TypeError, OSError)):
                mgr.mqtt_broker("mqtt://127.0.0.1:0", on_client=cb.on_client, **kwargs)
        with pytest.raises((ValueError, OSError)):
            mgr.mqtt_broker("bogus://127.0.0.1:0", on_client=cb.on_client)
    attempts()
    gc.collect()
    refs, objects, heap = sys.getrefcount(cb), len(gc.get_objects()), c_heap_in_use()
    for _ in range(50):
        attempts()
    gc.collect()
    assert sys.getrefcount(cb) == refs
    assert len(gc.get_objects()) - objects < 50
    assert c_heap_in_use() - heap < 256 * 1024
    mgr.close()
