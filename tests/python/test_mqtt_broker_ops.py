"""cymongoose-broker end to end: password file, ACL file, persistence across a
SIGKILL, bridges to a real mosquitto.  The broker program runs as a child
process (build/cymongoose-broker, built by `make programs`); clients are a
small raw MQTT client here (exact CONNACK/SUBACK/PUBACK codes) and
mosquitto_pub/mosquitto_sub."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CM_BUILD", os.path.join(ROOT, "build"))
BROKER = os.path.join(BUILD, "cymongoose-broker")
PASSWD = os.path.join(BUILD, "cymongoose-passwd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("port %d not listening" % port)


class Broker:
    """cymongoose-broker with a config file in tmp."""

    def __init__(self, tmp, conf_lines, name="broker"):
        if not os.access(BROKER, os.X_OK):
            pytest.fail("%s missing: run `make programs`" % BROKER)
        self.port = free_port()
        self.conf = os.path.join(tmp, name + ".conf")
        self.log = os.path.join(tmp, name + ".log")
        with open(self.conf, "w") as f:
            f.write("listener mqtt://127.0.0.1:%d\n" % self.port)
            f.write("".join(line + "\n" for line in conf_lines))
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([BROKER, "--config", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        rc = self.proc.wait(10)
        self.logf.close()
        return rc

    def stop(self):
        """SIGTERM: a clean stop (exit 0, "stopped" logged, no sanitizer report)."""
        if self.proc is not None and self.proc.poll() is None:
            assert self.kill(signal.SIGTERM) == 0, self.text()
            assert "stopped" in self.text()
        assert "Sanitizer" not in self.text() and "runtime error" not in self.text(), self.text()

    def text(self):
        with open(self.log) as f:
            return f.read()


@pytest.fixture
def brokers(tmp_path):
    started = []

    def make(lines, name="broker"):
        b = Broker(str(tmp_path), lines, name)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


# ------------------------------------------------------------ raw client
def enc_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def varint(n):
    out = b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


class Raw:
    """A minimal MQTT client over a socket: exact bytes in, exact codes out."""

    def __init__(self, port, client_id, version=4, user=None, password=None, clean=True,
                 expiry=None):
        self.v = version
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        flags = 0x02 if clean else 0
        payload = enc_str(client_id)
        if user is not None:
            flags |= 0x80
        if password is not None:
            flags |= 0x40
        props = b""
        if version == 5:
            if expiry is not None:
                props = b"\x11" + struct.pack("!I", expiry)
            props = varint(len(props)) + props
        if user is not None:
            payload += enc_str(user)
        if password is not None:
            payload += enc_str(password)
        var = enc_str("MQTT") + bytes([version, flags]) + struct.pack("!H", 60) + props
        self.send(0x10, var + payload)
        self.connack = self.read()

    def send(self, first, body):
        self.s.sendall(bytes([first]) + varint(len(body)) + body)

    def read(self):
        """One packet: (first byte, body)."""
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n and not self.buf[i - 1] & 0x80:
                    pkt = (self.buf[0], self.buf[i:i + n])
                    self.buf = self.buf[i + n:]
                    return pkt
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def connack_code(self):
        first, body = self.connack
        assert first == 0x20
        return body[1]

    def subscribe(self, topic, qos=1, pid=1):
        props = b"\x00" if self.v == 5 else b""
        self.send(0x82, struct.pack("!H", pid) + props + enc_str(topic) + bytes([qos]))
        while True:
            first, body = self.read()
            if first == 0x90:
                return body[3:] if self.v == 5 else body[2:]
            self.handle(first, body)

    def publish(self, topic, payload, qos=1, pid=1):
        """Returns the PUBACK reason code (0 on 3.1.1), None for QoS 0."""
        props = b"\x00" if self.v == 5 else b""
        first = 0x30 | (qos << 1)
        body = enc_str(topic) + (struct.pack("!H", pid) if qos else b"") + props + payload
        self.send(first, body)
        if qos == 0:
            return None
        while True:
            f, b = self.read()
            if f in (0x40, 0x50) and struct.unpack("!H", b[:2])[0] == pid:
                code = b[2] if len(b) > 2 else 0
                if f == 0x50 and code < 0x80:
                    self.send(0x62, b[:2])  # PUBREL; its PUBCOMP is read and ignored later
                return code
            self.handle(f, b)

    messages = None

    def handle(self, first, body):
        if first >> 4 == 3:
            qos = (first >> 1) & 3
            tl = struct.unpack("!H", body[:2])[0]
            topic = body[2:2 + tl].decode()
            rest = body[2 + tl:]
            if qos:
                pid = rest[:2]
                rest = rest[2:]
                self.send(0x40 if qos == 1 else 0x50, pid)
            if self.v == 5:
                pl = rest[0]  # property length < 128 in these tests
                rest = rest[1 + pl:]
            if self.messages is None:
                self.messages = []
            self.messages.append((topic, rest))
        elif first == 0x62:
            self.send(0x70, body[:2])  # PUBREL -> PUBCOMP

    def collect(self, until_count, timeout=10):
        self.s.settimeout(timeout)
        try:
            while len(self.messages or []) < until_count:
                self.handle(*self.read())
        except (socket.timeout, ConnectionError):
            pass
        return self.messages or []

    def close(self, clean=True):
        if clean:
            try:
                self.send(0xE0, b"\x00" if self.v == 5 else b"")
            except OSError:
                pass
        self.s.close()


def make_passwd(tmp, users):
    path = os.path.join(tmp, "passwd")
    first = True
    for user, pw in users:
        args = [PASSWD] + (["-c"] if first else []) + ["-i", "1000", "-b", path, user, pw]
        subprocess.run(args, check=True)
        first = False
    return path


# ------------------------------------------------------------------ tests
def test_password_file(brokers, tmp_path):
    pw = make_passwd(str(tmp_path), [("alice", "wonderland"), ("bob", "builder")])
    b = brokers(["password_file " + pw])
    for v, bad, notauth in ((4, 0x04, 0x05), (5, 0x86, 0x87)):
        ok = Raw(b.port, "a%d" % v, v, "alice", "wonderland")
        assert ok.connack_code() == 0
        ok.close()
        wrong = Raw(b.port, "w%d" % v, v, "alice", "wonderlanD")
        assert wrong.connack_code() == bad
        nopw = Raw(b.port, "n%d" % v, v, "bob")
        assert nopw.connack_code() == bad
        unknown = Raw(b.port, "u%d" % v, v, "carol", "builder")
        assert unknown.connack_code() == bad
        # anonymous access is off unless configured
        anon = Raw(b.port, "x%d" % v, v)
        assert anon.connack_code() == notauth
    # mosquitto_pub sees the refusal too
    r = subprocess.run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-u", "bob",
                        "-P", "nope", "-t", "t", "-m", "x", "-V", "mqttv5"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "refused: client" in b.text() or "refused" in b.text()


def test_acl(brokers, tmp_path):
    pw = make_passwd(str(tmp_path), [("alice", "a"), ("admin", "x")])
    acl = tmp_path / "acl"
    acl.write_text("user alice\n"
                   "topic write alice/#\n"
                   "topic read public/#\n"
                   "user admin\n"
                   "topic readwrite #\n"
                   "pattern readwrite clients/%c/#\n")
    b = brokers(["password_file " + pw, "acl_file %s" % acl])
    admin = Raw(b.port, "admin", 5, "admin", "x")
    assert admin.connack_code() == 0
    assert admin.subscribe("#", 1) == b"\x01"
    for v, refused in ((4, 0x80), (5, 0x87)):
        al = Raw(b.port, "al%d" % v, v, "alice", "a")
        assert al.connack_code() == 0
        assert al.subscribe("public/#", 1) == b"\x01"
        assert al.subscribe("alice/#", 1, pid=2) == bytes([refused])
        assert al.subscribe("#", 1, pid=3) == bytes([refused])
        assert al.subscribe("clients/al%d/#" % v, 1, pid=4) == b"\x01"
        # allowed publish, denied publish (v5 PUBACK 0x87; 3.1.1 acks and drops)
        assert al.publish("alice/ok%d" % v, b"1", 1, pid=5) == 0
        assert al.publish("public/no%d" % v, b"2", 1, pid=6) == (0x87 if v == 5 else 0)
        al.close()
    got = [t for t, _ in admin.collect(2, timeout=2)]
    assert "alice/ok4" in got and "alice/ok5" in got
    assert not any(t.startswith("public/") for t in got)
    admin.close()


@pytest.mark.parametrize("qos", [1, 2])
def test_sigkill_loses_no_acknowledged_message(brokers, tmp_path, qos):
    b = brokers(["allow_anonymous true", "persistence_file %s" % (tmp_path / "state.db"),
                 "fsync always", "max_queued_messages 100000"])
    sub = Raw(b.port, "durable-sub", 4, clean=False)
    assert sub.connack_code() == 0
    assert sub.subscribe("load/#", qos) == bytes([qos])
    sub.close()
    pub = Raw(b.port, "publisher", 4)
    acked = []
    killer = threading.Timer(1.0, lambda: b.proc.send_signal(signal.SIGKILL))
    killer.start()
    try:
        for i in range(100000):
            pid = i % 65535 + 1
            if pub.publish("load/%d" % i, b"%d" % i, qos, pid=pid) != 0:
                break
            acked.append(i)
    except (ConnectionError, OSError):
        pass
    killer.join()
    assert b.proc.wait(10) == -signal.SIGKILL
    b.logf.close()
    assert len(acked) > 0
    b.start()
    sub = Raw(b.port, "durable-sub", 4, clean=False)
    assert sub.connack_code() == 0
    assert sub.connack[1][0] == 1  # session present
    got = {int(p) for _, p in sub.collect(len(acked), timeout=20)}
    missing = [i for i in acked if i not in got]
    assert missing == [], "%d of %d acknowledged messages lost" % (len(missing), len(acked))
    sub.close()


@pytest.mark.parametrize("qos", [1, 2])
def test_sigkill_resends_a_sent_message_with_dup(brokers, tmp_path, qos):
    """A QoS 1/2 message sent to a persistent session but not acknowledged
    when the broker is SIGKILLed comes back after the restart as a resend
    (DUP set, same packet id), not as a new message: the move from queued
    to sent is persisted (msg_state CM_MQTT_HELD_SENT)."""
    b = brokers(["allow_anonymous true", "persistence_file %s" % (tmp_path / "state.db"),
                 "fsync always"])
    sub = Raw(b.port, "dup-sub", 4, clean=False)
    assert sub.subscribe("dup/t", qos) == bytes([qos])
    pub = Raw(b.port, "dup-pub", 4)
    assert pub.publish("dup/t", b"once", qos, pid=7) == 0  # acknowledged: durable
    first, body = sub.read()  # delivered, and never acknowledged
    assert first >> 4 == 3 and not first & 0x08 and body.endswith(b"once"), (first, body)
    pid = body[2 + 5:2 + 5 + 2]  # after the topic "dup/t"
    assert b.kill() == -signal.SIGKILL
    sub.s.close()
    pub.s.close()
    b.start()
    sub = Raw(b.port, "dup-sub", 4, clean=False)
    assert sub.connack[1][0] == 1  # session present
    first, body = sub.read()
    assert first >> 4 == 3 and first & 0x08, "resent without DUP: %r" % ((first, body),)
    assert body[2 + 5:2 + 5 + 2] == pid and body.endswith(b"once")
    sub.s.settimeout(0.5)
    with pytest.raises(socket.timeout):  # once: no second copy as a new message
        sub.read()
    sub.close()


def test_retained_survive_restart(brokers, tmp_path):
    b = brokers(["allow_anonymous true", "persistence_file %s" % (tmp_path / "state.db")])
    r = subprocess.run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-t", "cfg/a",
                        "-m", "kept", "-r", "-q", "1"], timeout=10)
    assert r.returncode == 0
    assert b.kill(signal.SIGTERM) == 0
    assert "stopped" in b.text()
    b.start()
    out = subprocess.run(["mosquitto_sub", "-p", str(b.port), "-h", "127.0.0.1", "-t", "cfg/#",
                          "-C", "1", "-W", "5", "-v"], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "cfg/a kept"


def start_mosquitto(tmp):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def sub_proc(port, topic, count, version="mqttv5"):
    p = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-h", "127.0.0.1", "-t", topic,
                          "-C", str(count), "-W", "10", "-v", "-q", "1", "-V", version],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # mosquitto_sub has no "subscribed" signal; a late one fails the test
    return p


def pub(port, topic, msg, version="mqttv5"):
    subprocess.run(["mosquitto_pub", "-p", str(port), "-h", "127.0.0.1", "-t", topic, "-m", msg,
                    "-q", "1", "-V", version], check=True, timeout=10)


def wait_bridge(b):
    deadline = time.monotonic() + 10
    while "bridge up: connected" not in b.text():
        assert time.monotonic() < deadline, b.text()
        time.sleep(0.05)


@pytest.mark.parametrize("version", ["mqttv50", "mqttv311"])
def test_bridge_both_directions(brokers, tmp_path, version):
    mproc, mport = start_mosquitto(str(tmp_path))
    try:
        b = brokers(["allow_anonymous true",
                     "bridge up mqtt://127.0.0.1:%d" % mport,
                     "bridge_protocol_version " + version,
                     "topic sensors/# out 1 site1/ edge/",
                     "topic cmd/# in 1 local/ \"\"",
                     "topic chat/# both 1"])
        wait_bridge(b)
        time.sleep(0.3)  # the SUBACKs of the bridge's subscriptions
        # out: local site1/sensors/t -> upstream edge/sensors/t
        up = sub_proc(mport, "edge/#", 1)
        pub(b.port, "site1/sensors/t", "21.5")
        assert up.communicate(timeout=15)[0].strip() == "edge/sensors/t 21.5"
        # not under the local prefix: not forwarded
        # in: upstream cmd/x -> local local/cmd/x
        down = sub_proc(b.port, "local/#", 1)
        pub(mport, "cmd/x", "go")
        assert down.communicate(timeout=15)[0].strip() == "local/cmd/x go"
        # both: each side sees the other's message exactly once
        local = sub_proc(b.port, "chat/#", 2)
        remote = sub_proc(mport, "chat/#", 2)
        pub(b.port, "chat/from-local", "1")
        pub(mport, "chat/from-remote", "2")
        lo = local.communicate(timeout=15)[0].split("\n")
        ro = remote.communicate(timeout=15)[0].split("\n")
        assert sorted(filter(None, lo)) == ["chat/from-local 1", "chat/from-remote 2"]
        assert sorted(filter(None, ro)) == ["chat/from-local 1", "chat/from-remote 2"]
        if version == "mqttv50":
            # no-local: no echo comes back; nothing more arrives locally
            extra = subprocess.run(["mosquitto_sub", "-p", str(b.port), "-h", "127.0.0.1", "-t",
                                    "chat/#", "-C", "1", "-W", "2", "-v"],
                                   capture_output=True, text=True, timeout=10)
            assert extra.stdout == ""
    finally:
        mproc.send_signal(signal.SIGTERM)
        mproc.wait(10)


def test_bridge_reconnects(brokers, tmp_path):
    port = free_port()
    b = brokers(["allow_anonymous true", "bridge up mqtt://127.0.0.1:%d" % port,
                 "topic t/# out 1"])
    time.sleep(1.5)
    assert "bridge up: reconnecting in" in b.text()
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = tmp_path / "m.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    mproc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_bridge(b)
        up = sub_proc(port, "t/#", 1)
        pub(b.port, "t/1", "after")
        assert up.communicate(timeout=15)[0].strip() == "t/1 after"
    finally:
        mproc.send_signal(signal.SIGTERM)
        mproc.wait(10)


def test_bad_config_names_the_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("allow_anonymous true\nmax_inflight lots\n")
    r = subprocess.run([BROKER, "--config", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "bad.conf:2: max_inflight: expected a number" in r.stderr


def test_topic_alias_out_max_from_config(brokers):
    """topic_alias_out_max in the program's config file: a v5 subscriber
    allowing 5 aliases gets, with 1 configured, the first topic as name plus
    alias 1, then the alias alone (empty name), and the second topic always
    by name without an alias."""
    b = brokers(["allow_anonymous true", "topic_alias_out_max 1"])
    sub = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    raw = Raw.__new__(Raw)  # its packet reader on a CONNECT of our own
    raw.s, raw.buf, raw.v = sub, b"", 5
    props = b"\x22\x00\x05"  # Topic Alias Maximum 5
    raw.send(0x10, enc_str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) +
             varint(len(props)) + props + enc_str("alias-sub"))
    assert raw.read()[0] == 0x20
    assert raw.subscribe("aliascfg/#", qos=0) == b"\x00"
    pub = Raw(b.port, "alias-pub")
    for rnd in range(2):
        for t in ("aliascfg/a", "aliascfg/b"):
            assert pub.publish(t, b"%d" % rnd, qos=1, pid=rnd * 2 + len(t)) == 0
    got = []
    while len(got) < 4:
        first, body = raw.read()
        assert first >> 4 == 3
        tl = struct.unpack("!H", body[:2])[0]
        topic, rest = body[2:2 + tl].decode(), body[2 + tl:]
        plen, pr = rest[0], rest[1:1 + rest[0]]
        alias = struct.unpack("!H", pr[1:3])[0] if plen >= 3 and pr[0] == 0x23 else None
        got.append((topic, alias, rest[1 + plen:]))
    assert got == [("aliascfg/a", 1, b"0"), ("aliascfg/b", None, b"0"),
                   ("", 1, b"1"), ("aliascfg/b", None, b"1")]
    pub.close()
    raw.close()


def test_tls_client_certificate_identity(brokers, tmp_path):
    """mqtts:// with require_certificate and use_identity_as_username: the
    certificate's CN is the user name the ACL sees; no certificate, no
    connection."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    alice = ca.issue_cert("alice@example.test", common_name="alice")
    files = {}
    for name, blob in (("ca.pem", ca.cert_pem), ("server.pem", server.cert_chain_pems[0]),
                       ("server.key", server.private_key_pem), ("alice.pem", alice.cert_chain_pems[0]),
                       ("alice.key", alice.private_key_pem)):
        files[name] = str(tmp_path / name)
        blob.write_to_path(files[name])
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    tport = free_port()
    b = brokers(["allow_anonymous true",  # for the plain listener only: TLS needs a certificate
                 "acl_file %s" % acl,
                 "listener mqtts://127.0.0.1:%d" % tport,
                 "certfile " + files["server.pem"], "keyfile " + files["server.key"],
                 "cafile " + files["ca.pem"], "require_certificate true",
                 "use_identity_as_username true"])
    wait_port(tport, b.proc)
    tls = ["-p", str(tport), "-h", "127.0.0.1", "--cafile", files["ca.pem"], "--cert",
           files["alice.pem"], "--key", files["alice.key"], "-V", "mqttv5"]
    sub = subprocess.Popen(["mosquitto_sub"] + tls + ["-t", "alice/#", "-C", "1", "-W", "10",
                                                       "-v"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(["mosquitto_pub"] + tls + ["-t", "alice/x", "-m", "by-cert", "-q", "1"],
                   check=True, timeout=10)
    assert sub.communicate(timeout=15)[0].strip() == "alice/x by-cert"
    # the ACL applies to the CN: another topic is refused
    r = subprocess.run(["mosquitto_sub"] + tls + ["-t", "bob/#", "-C", "1", "-W", "2"],
                       capture_output=True, text=True, timeout=10)
    assert "All subscription requests were denied" in r.stderr
    # without a client certificate the TLS handshake fails
    r = subprocess.run(["mosquitto_pub", "-p", str(tport), "-h", "127.0.0.1", "--cafile",
                        files["ca.pem"], "-t", "alice/x", "-m", "x"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
