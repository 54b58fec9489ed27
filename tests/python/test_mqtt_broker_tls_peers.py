"""MqttBroker's TLS listeners against third-party clients: mosquitto_pub and
mosquitto_sub on mqtts:// (trusting our CA with --cafile; with client
certificates when the listener asks for them), and python3-paho-mqtt over
wss:// (transport="websockets" with tls_set).  Certificates come from
trustme at test time."""
import subprocess
import threading

import pytest

import cymongoose as cm
from mqtt_helpers import paho_client, unique
from test_mqtt_broker_peers import TIMEOUT, BrokerThread, need, wait_for, wait_subscribed

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client
    certificate (CN alice), as files; plus one client certificate from
    another CA, which the broker must refuse."""
    d = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    alice = ca.issue_cert("alice@example.test", common_name="alice")
    mallory = other.issue_cert("mallory@example.test", common_name="mallory")
    files = {}
    for name, blob in (("ca.pem", ca.cert_pem), ("server.pem", server.cert_chain_pems[0]),
                       ("server.key", server.private_key_pem),
                       ("alice.pem", alice.cert_chain_pems[0]), ("alice.key", alice.private_key_pem),
                       ("mallory.pem", mallory.cert_chain_pems[0]),
                       ("mallory.key", mallory.private_key_pem)):
        files[name] = str(d / name)
        blob.write_to_path(files[name])
    files["pems"] = {k: open(v).read() for k, v in files.items()}
    return files


@pytest.fixture
def tls_broker(pki):
    """A broker with mqtts:// and wss:// listeners without client
    certificates, and the same two with client certificates required."""
    b = BrokerThread()
    pems = pki["pems"]
    plain = cm.TlsOpts(cert=pems["server.pem"], key=pems["server.key"])
    certs = cm.TlsOpts(cert=pems["server.pem"], key=pems["server.key"], ca=pems["ca.pem"])
    b.ports = b.call(lambda: {
        "mqtts": b.broker.listen("mqtts://127.0.0.1:0", tls=plain),
        "wss": b.broker.listen("wss://127.0.0.1:0/mqtt", tls=plain),
        "mqtts-cert": b.broker.listen("mqtts://127.0.0.1:0", tls=certs),
        "wss-cert": b.broker.listen("wss://127.0.0.1:0/mqtt", tls=certs),
    })
    yield b
    b.close()


def mosq_tls(pki, port, version, cert=None):
    args = ["-h", "localhost", "-p", str(port), "-V", version, "--cafile", pki["ca.pem"]]
    if cert:
        args += ["--cert", pki[cert + ".pem"], "--key", pki[cert + ".key"]]
    return args


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("listener,cert", [("mqtts", None), ("mqtts-cert", "alice")])
def test_mosquitto_clients_over_mqtts(pki, tls_broker, version, listener, cert):
    """mosquitto_sub and mosquitto_pub (verifying our certificate against
    --cafile, and presenting theirs where the listener asks) exchange a QoS 1
    message through our mqtts:// listener."""
    port = tls_broker.ports[listener]
    topic = unique("tls")
    sub = subprocess.Popen([need("mosquitto_sub")] + mosq_tls(pki, port, version, cert) +
                           ["-t", topic, "-q", "1", "-C", "1", "-W", str(TIMEOUT), "-v"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_subscribed(tls_broker, 1)
    r = subprocess.run([need("mosquitto_pub")] + mosq_tls(pki, port, version, cert) +
                       ["-t", topic, "-q", "1", "-m", "over tls"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=TIMEOUT)
    assert out.strip() == topic + " over tls", err


def test_mosquitto_without_or_with_foreign_certificate_is_refused(pki, tls_broker):
    """The listener that requires client certificates refuses a client with
    none and one whose certificate another CA signed; and a client that
    trusts another CA refuses our server certificate."""
    port = tls_broker.ports["mqtts-cert"]
    for cert in (None, "mallory"):
        r = subprocess.run([need("mosquitto_pub")] + mosq_tls(pki, port, "mqttv5", cert) +
                           ["-t", "x", "-m", "x"], capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode != 0, (cert, r.stdout, r.stderr)
    r = subprocess.run([need("mosquitto_pub"), "-h", "localhost", "-p",
                        str(tls_broker.ports["mqtts"]), "--cafile", pki["mallory.pem"],
                        "-t", "x", "-m", "x"], capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert tls_broker.stats()["msgs_received"] == 0


def paho_wss(pki, port, version, cert=None):
    """A paho client connected over wss:// (its network loop in its thread);
    .received collects (topic, payload, qos, retain, properties)."""
    import ssl
    c = paho_client(version, "", transport="websockets")
    c.ws_set_options(path="/mqtt")
    c.tls_set(ca_certs=pki["ca.pem"], certfile=pki[cert + ".pem"] if cert else None,
              keyfile=pki[cert + ".key"] if cert else None, cert_reqs=ssl.CERT_REQUIRED,
              tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connected = threading.Event()
    c.on_connect = lambda cl, ud, flags, rc, props=None: c.connected.set()
    c.connect("localhost", port)
    c.loop_start()
    assert c.connected.wait(TIMEOUT)
    return c


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("listener,cert", [("wss", None), ("wss-cert", "alice")])
def test_paho_over_wss(pki, tls_broker, version, listener, cert):
    """paho-mqtt over wss:// (tls_set with our CA; its certificate where the
    listener asks) subscribes and gets back what it publishes, QoS 0 and 1."""
    c = paho_wss(pki, tls_broker.ports[listener], version, cert)
    try:
        topic = unique("wss")
        done = threading.Event()
        c.on_subscribe = lambda *a: done.set()
        c.subscribe(topic, 1)
        assert done.wait(TIMEOUT)
        c.publish(topic, b"q0", 0).wait_for_publish()
        c.publish(topic, b"q1", 1).wait_for_publish()
        assert wait_for(lambda: len(c.received) >= 2)
        assert sorted((t, p) for t, p, *_ in c.received) == [(topic, b"q0"), (topic, b"q1")]
    finally:
        c.disconnect()
        c.loop_stop()
