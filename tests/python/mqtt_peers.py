"""The MQTT peers of the tests: mosquitto (plain and TLS listeners, MQTT
3.1.1 and 5), the npm aedes broker with a WebSocket listener, MQTT.js and
paho-mqtt clients.  Each server runs on a free loopback port and is stopped
by its pid (peers.tcp_peer).

npm packages come from scripts/npm-peers.sh (run by `make test`) in
build/npm; when they are missing the tests needing them skip and say why.
"""
import base64
import json
import os
import pathlib
import pwd
import shutil
import subprocess
import threading
import queue

import pytest

from peers import find_exe, free_tcp_port, peer_env, tcp_peer

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"
NPM_DIR = pathlib.Path(os.environ.get("NPM_PEERS_DIR", ROOT / "build" / "npm"))


def trustme_certs(d):
    """trustme certificates in d for localhost, 127.0.0.1 and ::1:
    server.pem/server.key for the server, client.pem is the CA to trust."""
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "server.key").exists():
        subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i", "localhost",
                        "127.0.0.1", "::1"], check=True, capture_output=True)
    return d


class Mosquitto:
    """A running mosquitto: port (plain MQTT), tls_port (MQTT over TLS with a
    trustme certificate, or None), ca (the PEM to trust), log_text()."""

    def __init__(self, workdir, tls=False, extra_conf=""):
        self.workdir = pathlib.Path(workdir)
        self.port = free_tcp_port()
        self.tls_port = None
        self.ca = None
        # user: as root, mosquitto would switch to the "mosquitto" account,
        # which cannot read our scratch directory; stay who we are.
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = ["user %s" % pwd.getpwuid(os.getuid()).pw_name, "per_listener_settings false", "allow_anonymous true", "persistence false",
                 "log_dest file %s" % (self.workdir / "broker.log"), "log_type all", "connection_messages true",
                 "listener %d 127.0.0.1" % self.port]
        if tls:
            certs = trustme_certs(self.workdir / "certs")
            self.ca = (certs / "client.pem").read_bytes()
            self.tls_port = free_tcp_port()
            lines += ["listener %d 127.0.0.1" % self.tls_port,
                      "certfile %s" % (certs / "server.pem"),
                      "keyfile %s" % (certs / "server.key")]
        lines.append(extra_conf)
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.logpath = self.workdir / "broker.log"

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "mqtts://localhost:%d" % self.tls_port

    def log_text(self):
        return self.logpath.read_text(errors="replace")


def _mosquitto(tmp_path_factory, tls):
    exe = find_exe("mosquitto")
    if exe is None:
        pytest.skip("mosquitto is not installed (scripts/deps.sh installs it)")
    m = Mosquitto(tmp_path_factory.mktemp("mosquitto"), tls=tls)
    return exe, m


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    """A mosquitto broker (plain listener) for the tests of one module."""
    exe, m = _mosquitto(tmp_path_factory, tls=False)
    with tcp_peer("mosquitto", [exe, "-c", str(m.conf)], m.port, m.workdir):
        yield m


@pytest.fixture(scope="module")
def mosquitto_tls(tmp_path_factory):
    """A mosquitto broker with a plain and a TLS listener."""
    exe, m = _mosquitto(tmp_path_factory, tls=True)
    with tcp_peer("mosquitto", [exe, "-c", str(m.conf)], m.tls_port, m.workdir):
        yield m


# ------------------------------------------------------------------ npm peers

def npm_modules():
    """build/npm with aedes, ws and mqtt installed, or skips the test."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (scripts/deps.sh installs it)")
    for name in ("aedes", "ws", "mqtt"):
        if not (NPM_DIR / "node_modules" / name / "package.json").exists():
            pytest.skip("npm package %r missing in %s: run scripts/npm-peers.sh "
                        "(it needs the npm registry)" % (name, NPM_DIR))
    return NPM_DIR


class Aedes:
    def __init__(self, port, ca=None):
        self.port = port
        self.ca = ca  # the PEM to trust for wss://, None for ws://

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/mqtt" % self.port

    @property
    def wss_url(self):
        return "wss://localhost:%d/mqtt" % self.port


@pytest.fixture(scope="module")
def aedes_ws(tmp_path_factory):
    """An aedes broker (MQTT 3.1.1) with a WebSocket listener, subprotocol mqtt."""
    modules = npm_modules()
    port = free_tcp_port()
    workdir = tmp_path_factory.mktemp("aedes")
    argv = ["node", str(NODE_DIR / "aedes_broker.mjs"), str(modules), str(port)]
    with tcp_peer("aedes", argv, port, workdir):
        yield Aedes(port)


@pytest.fixture(scope="module")
def aedes_wss(tmp_path_factory):
    """The same broker behind a TLS WebSocket listener (trustme certificate)."""
    modules = npm_modules()
    port = free_tcp_port()
    workdir = tmp_path_factory.mktemp("aedes-wss")
    certs = trustme_certs(workdir / "certs")
    argv = ["node", str(NODE_DIR / "aedes_broker.mjs"), str(modules), str(port),
            str(certs / "server.pem"), str(certs / "server.key")]
    with tcp_peer("aedes", argv, port, workdir):
        yield Aedes(port, (certs / "client.pem").read_bytes())


class MqttJs:
    """MQTT.js running a script (see node/mqttjs_client.js); events() yields
    its JSON lines as dicts, payloads decoded to bytes."""

    def __init__(self, url, options=None, subscribe=(), publish=(), expect=0, wait_stdin=False):
        modules = npm_modules()
        script = {"options": options or {}, "subscribe": [list(s) for s in subscribe],
                  "publish": [[t, base64.b64encode(p).decode(), q, r] for t, p, q, r in publish],
                  "expect": expect, "wait_stdin": wait_stdin}
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "mqttjs_client.js"), str(modules), url, json.dumps(script)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=peer_env())
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            if "payload" in ev:
                ev["payload"] = base64.b64decode(ev["payload"])
            self.lines.put(ev)
        self.lines.put(None)

    def next_event(self, timeout=20):
        """The next event (dict), or None when the client has exited."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def go(self):
        """Lets a client started with wait_stdin=True publish."""
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its pid
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
