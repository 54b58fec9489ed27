"""The original package's low-level broker pattern on Manager.mqtt_listen:
the handler answers CONNECT, SUBSCRIBE, PINGREQ itself (raw bytes, as
programs written for the original do) and forwards each PUBLISH with
mqtt_pub to the matching subscribers.  Real clients: paho-mqtt (3.1.1 and
5), mosquitto_pub/mosquitto_sub, MQTT.js."""
import os
import subprocess
import sys
import time

import pytest

import cymongoose as cm
from core_helpers import poll_until
from mqtt_helpers import (DISCONNECT, UNSUBSCRIBE, TinyBroker, paho_client, topic_matches,
                          unique)
from mqtt_peers import mosquitto  # noqa: F401  (fixture)


@pytest.fixture
def broker():
    mgr = cm.Manager()
    b = TinyBroker(mgr)
    b.mgr = mgr
    yield b
    mgr.close()


def test_topic_matcher():
    assert topic_matches("a/b", "a/+") and topic_matches("a/b/c", "a/#")
    assert not topic_matches("a/b/c", "a/+") and topic_matches("a", "a/#")


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_clients_through_the_lowlevel_broker(broker, version, qos):
    topic = unique("ll")
    sub = paho_client(version, client_id=unique("paho-sub"))
    pub = paho_client(version, client_id=unique("paho-pub"))
    subscribed, published = [], []
    sub.on_subscribe = lambda *a: subscribed.append(a)
    pub.on_publish = lambda *a: published.append(a)
    for c in (sub, pub):
        c.connect("127.0.0.1", broker.port, 60)
        c.loop_start()
    try:
        assert poll_until(broker.mgr, lambda: sub.is_connected() and pub.is_connected())
        sub.subscribe(topic + "/+", qos)
        assert poll_until(broker.mgr, lambda: subscribed)
        payloads = [b"", b"one", bytes(range(256)), os.urandom(200_000)]
        for i, p in enumerate(payloads):
            pub.publish("%s/%d" % (topic, i), p, qos)
        assert poll_until(broker.mgr, lambda: len(sub.received) == len(payloads)), broker.errors
        assert [(t, p, q) for t, p, q, _, _ in sub.received] == [
            ("%s/%d" % (topic, i), p, qos) for i, p in enumerate(payloads)]
        assert poll_until(broker.mgr, lambda: len(published) == len(payloads))  # acks came back
        sub.unsubscribe(topic + "/+")
        assert poll_until(broker.mgr, lambda: UNSUBSCRIBE in broker.seen)
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
    assert poll_until(broker.mgr, lambda: broker.seen.count(DISCONNECT) == 2)
    assert broker.errors == []


def test_mosquitto_clients_through_the_lowlevel_broker(broker):
    topic = unique("ll-cli")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-t", topic, "-C", "2", "-q", "1", "-V", "mqttv311"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert poll_until(broker.mgr, lambda: broker.subs)
        for text in ("first", "second"):
            pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                                    "-t", topic, "-m", text, "-q", "1", "-V", "mqttv5"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            end = time.monotonic() + 20
            while pub.poll() is None and time.monotonic() < end:
                broker.mgr.poll(10)
            assert pub.returncode == 0, pub.stderr.read()
        end = time.monotonic() + 20
        while sub.poll() is None and time.monotonic() < end:
            broker.mgr.poll(10)
        assert sub.stdout.read().decode().split() == ["first", "second"]
    finally:
        for p in (sub,):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_ping_answered_by_the_application(broker):
    import socket
    s = socket.create_connection(("127.0.0.1", broker.port))
    s.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")  # CONNECT, client id "x"
    s.sendall(b"\xc0\x00")                                    # PINGREQ
    got = b""
    end = time.monotonic() + 20
    s.setblocking(False)
    while len(got) < 6 and time.monotonic() < end:
        broker.mgr.poll(10)
        try:
            got += s.recv(100)
        except BlockingIOError:
            pass
    s.close()
    assert got == b"\x20\x02\x00\x00\xd0\x00"  # CONNACK then PINGRESP


# ------------------------------------------------------------------ the examples

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(EXAMPLES, "..", "..", "python"))
    return subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("v5", [False, True])
def test_monitor_example_through_the_tiny_broker_example(v5):
    broker = run_example("mqtt_tiny_broker.py", "mqtt://127.0.0.1:0")
    try:
        line = broker.stdout.readline()
        assert line.startswith("listening on port"), broker.stderr.read()
        port = int(line.split()[-1])
        monitor = run_example("mqtt_monitor.py", "mqtt://127.0.0.1:%d" % port, "--count", "5",
                              *(["--v5"] if v5 else []))
        out, err = monitor.communicate(timeout=60)
        assert monitor.returncode == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("connected to")
        readings = [ln for ln in lines[1:] if ln.endswith(" C")]
        assert len(readings) == 5 and err == ""
    finally:
        broker.terminate()  # our own child, by its pid
        broker.communicate(timeout=10)


def test_monitor_example_against_mosquitto(mosquitto):
    monitor = run_example("mqtt_monitor.py", mosquitto.url, "--count", "20", "--v5")
    out, err = monitor.communicate(timeout=60)
    assert monitor.returncode == 0, err
    assert len([ln for ln in out.splitlines() if ln.endswith(" C")]) == 20
