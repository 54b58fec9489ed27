"""Asynchronous DNS through the Python API.

Every Manager here is pointed at a server this file runs on 127.0.0.1:
dnsmasq for real answers, or a small dnslib responder thread for SERVFAIL
and silence.  No query may reach the servers of /etc/resolv.conf.
"""
import socket

import pytest

import cymongoose as cm
from core_helpers import EventLog, poll_for, poll_until
from peers import ScriptedUdpPeer, find_exe, scripted_fixture, udp_peer

dnslib = pytest.importorskip("dnslib")


@pytest.fixture(autouse=True)
def no_env_server(monkeypatch):
    monkeypatch.delenv("CM_DNS_SERVER", raising=False)


def free_port():
    """A port free for UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    exe = find_exe("dnsmasq")
    if exe is None:
        pytest.skip("dnsmasq is not installed")
    d = tmp_path_factory.mktemp("dnsmasq")
    port = free_port()
    conf = d / "dnsmasq.conf"
    conf.write_text(
        "no-resolv\nno-hosts\nport=%d\nlisten-address=127.0.0.1\nbind-interfaces\n"
        "local=/test/\nhost-record=host.test,127.0.0.5,::5\nhost-record=v6.test,::1\n"
        "cname=alias.test,host.test\nuser=root\npid-file=\n" % port)
    with udp_peer("dnsmasq", [exe, "--keep-in-foreground", "-C", str(conf)], port, d):
        yield "udp://127.0.0.1:%d" % port


class ScriptedDns(ScriptedUdpPeer):
    """A DNS responder: 'servfail' answers SERVFAIL, 'silent' never answers."""

    queries = 0

    def handle(self, data, peer):
        self.queries += 1
        if self.mode == "silent":
            return
        reply = dnslib.DNSRecord.parse(data).reply()
        reply.header.rcode = dnslib.RCODE.SERVFAIL
        self.sock.sendto(reply.pack(), peer)


scripted = scripted_fixture(ScriptedDns)


def noop(conn, ev, data):
    pass


def test_connect_by_name_resolves_then_connects(dnsmasq):
    log = EventLog()
    with cm.Manager(dns=dnsmasq) as mgr:
        lst = mgr.listen("tcp://127.0.0.5:0", noop)
        port = lst.local_addr[1]
        for name in ("host.test", "alias.test"):
            conn = mgr.connect("tcp://%s:%d" % (name, port), log)
            assert poll_until(mgr, lambda: cm.MG_EV_CONNECT in log.of(conn) or conn.is_closing)
            assert log.of(conn)[:3] == [cm.MG_EV_OPEN, cm.MG_EV_RESOLVE, cm.MG_EV_CONNECT]
            assert conn.remote_addr == ("127.0.0.5", port, False)
            conn.close()


def test_ipv6_only_name(dnsmasq):
    log = EventLog()
    with cm.Manager(dns=dnsmasq) as mgr:
        lst = mgr.listen("tcp://[::1]:0", noop)
        conn = mgr.connect("tcp://v6.test:%d" % lst.local_addr[1], log)
        assert poll_until(mgr, lambda: cm.MG_EV_CONNECT in log.of(conn) or conn.is_closing)
        assert conn.remote_addr == ("::1", lst.local_addr[1], True)


def test_unknown_name_is_an_error(dnsmasq):
    log = EventLog()
    with cm.Manager(dns=dnsmasq) as mgr:
        conn = mgr.connect("tcp://missing.test:80", log)
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        assert log.of(conn) == [cm.MG_EV_OPEN, cm.MG_EV_ERROR, cm.MG_EV_CLOSE]
        (msg,) = log.data(cm.MG_EV_ERROR)
        assert "missing.test" in msg and "NXDOMAIN" in msg


def test_resolve_method_sets_remote_addr(dnsmasq):
    log = EventLog()
    with cm.Manager(dns=dnsmasq) as mgr:
        conn = mgr.listen("udp://127.0.0.1:0", log)
        assert conn.resolve("udp://alias.test:1234") is None
        assert cm.MG_EV_RESOLVE not in log.of(conn)  # never inside the call
        assert poll_until(mgr, lambda: cm.MG_EV_RESOLVE in log.of(conn))
        assert conn.remote_addr == ("127.0.0.5", 1234, False)
        with pytest.raises(ValueError):
            conn.resolve("tcp://:80")
        with pytest.raises(TypeError):
            conn.resolve(b"udp://host.test:1")
        conn.close()
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        with pytest.raises(RuntimeError):
            conn.resolve("udp://host.test:1")
        with pytest.raises(RuntimeError):
            conn.resolve_cancel()


def test_server_from_environment(dnsmasq, monkeypatch):
    monkeypatch.setenv("CM_DNS_SERVER", dnsmasq)
    log = EventLog()
    with cm.Manager() as mgr:
        conn = mgr.listen("udp://127.0.0.1:0", log)
        conn.resolve("udp://host.test:7")
        assert poll_until(mgr, lambda: cm.MG_EV_RESOLVE in log.of(conn) or log.data(cm.MG_EV_ERROR))
        assert conn.remote_addr == ("127.0.0.5", 7, False)


def test_localhost_comes_from_hosts_file(scripted):
    server = scripted("silent")
    log = EventLog()
    with cm.Manager(dns=server.url) as mgr:
        conn = mgr.listen("udp://127.0.0.1:0", log)
        conn.resolve("udp://localhost:4242")
        assert poll_until(mgr, lambda: cm.MG_EV_RESOLVE in log.of(conn) or log.data(cm.MG_EV_ERROR))
        assert conn.remote_addr == ("127.0.0.1", 4242, False)
    assert server.queries == 0


def test_servfail_is_an_error(scripted):
    server = scripted("servfail")
    log = EventLog()
    with cm.Manager(dns=server.url) as mgr:
        conn = mgr.connect("tcp://broken.example:80", log)
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        (msg,) = log.data(cm.MG_EV_ERROR)
        assert "SERVFAIL" in msg and "broken.example" in msg
    assert server.queries >= 1


def test_no_answer_times_out(scripted):
    server = scripted("silent")
    log = EventLog()
    with cm.Manager(dns=server.url, dns_timeout_ms=300) as mgr:
        conn = mgr.connect("tcp://slow.example:80", log)
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        (msg,) = log.data(cm.MG_EV_ERROR)
        assert "timed out" in msg
    assert server.queries >= 1


def test_resolve_cancel_keeps_the_connection_quiet(scripted):
    server = scripted("silent")
    log = EventLog()
    with cm.Manager(dns=server.url, dns_timeout_ms=200) as mgr:
        conn = mgr.connect("tcp://never.example:80", log)
        mgr.poll(0)
        conn.resolve_cancel()
        poll_for(mgr, 0.5)
        assert log.of(conn) == [cm.MG_EV_OPEN]
        assert not conn.is_closing
        conn.close()
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))


def test_close_while_resolving(dnsmasq):
    log = EventLog()
    with cm.Manager(dns=dnsmasq) as mgr:
        conn = mgr.connect("tcp://host.test:9", log)
        conn.close()
        poll_for(mgr, 0.3)
        assert log.of(conn) == [cm.MG_EV_OPEN, cm.MG_EV_CLOSE]


@pytest.mark.parametrize("bad", ["example.com", "tcp://127.0.0.1:53", "127.0.0.1:0", "udp://"])
def test_bad_server_list(bad):
    with pytest.raises(ValueError):
        cm.Manager(dns=bad)


def test_close_manager_with_lookups_in_flight(scripted):
    server = scripted("silent")
    log = EventLog()
    mgr = cm.Manager(dns=server.url)
    conns = [mgr.connect("tcp://pending%d.example:80" % i, log) for i in range(3)]
    mgr.poll(10)
    mgr.close()
    for c in conns:
        assert log.of(c) == [cm.MG_EV_OPEN, cm.MG_EV_CLOSE]
