"""SNTP client through the Python API: chronyd on 127.0.0.1 for real
answers, a scripted 48-byte responder thread for the bad ones."""
import socket
import struct
import time

import pytest

import cymongoose as cm
from core_helpers import EventLog, poll_until
from peers import ScriptedUdpPeer, find_exe, scripted_fixture, udp_peer

NTP_UNIX_OFFSET = 2208988800


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def chrony(tmp_path_factory):
    exe = find_exe("chronyd")
    if exe is None:
        pytest.skip("chronyd is not installed")
    d = tmp_path_factory.mktemp("chrony")
    port = free_udp_port()
    conf = d / "chrony.conf"
    conf.write_text(
        "port %d\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 8\nallow 127.0.0.1\n"
        "pidfile %s/chronyd.pid\ndriftfile %s/drift\nuser root\n" % (port, d, d))
    # -x: never touch the system clock.
    with udp_peer("chronyd", [exe, "-d", "-x", "-f", str(conf)], port, d):
        yield "udp://127.0.0.1:%d" % port


class ScriptedNtp(ScriptedUdpPeer):
    """Answers each request with a reply spoiled according to mode."""

    SERVER_TIME = 1900000000.25  # 2030-03-17
    requests = 0

    def reply(self, request):
        origin = request[40:48]
        t = self.SERVER_TIME + NTP_UNIX_OFFSET
        ts = struct.pack(">II", int(t), int((t % 1) * 2**32))
        li, stratum, refid = 0, 2, b"GPS\0"
        if self.mode == "kod":
            stratum, refid = 0, b"RATE"
        elif self.mode == "unsync":
            li = 3
        elif self.mode == "forged":
            origin = bytes(8)
        first = bytes([li << 6 | 4 << 3 | 4, stratum, 6, 0xE9])
        return first + bytes(8) + refid + bytes(8) + origin + ts + ts

    def handle(self, data, peer):
        if len(data) >= 48 and data[0] & 7 == 3:
            self.requests += 1
            self.sock.sendto(self.reply(data), peer)


scripted = scripted_fixture(ScriptedNtp)


def test_chrony_time_and_another_request(chrony):
    log = EventLog()
    with cm.Manager(dns="udp://127.0.0.1:9") as mgr:
        conn = mgr.sntp_connect(chrony, log)
        assert conn.is_udp
        assert poll_until(mgr, lambda: log.data(cm.MG_EV_SNTP_TIME) or conn.is_closing)
        (ms,) = log.data(cm.MG_EV_SNTP_TIME)
        assert isinstance(ms, int)
        # chronyd serves this machine's clock.
        assert abs(ms - time.time() * 1000) < 5000
        assert conn.sntp_request() is True
        assert poll_until(mgr, lambda: len(log.data(cm.MG_EV_SNTP_TIME)) == 2 or conn.is_closing)
        assert not log.data(cm.MG_EV_ERROR)


def test_scripted_good_reply(scripted):
    server = scripted("good")
    log = EventLog()
    with cm.Manager() as mgr:
        conn = mgr.sntp_connect(server.url, log)
        assert poll_until(mgr, lambda: log.data(cm.MG_EV_SNTP_TIME) or conn.is_closing)
        (ms,) = log.data(cm.MG_EV_SNTP_TIME)
        assert 1900000000250 - 1 <= ms < 1900000000250 + 1000


@pytest.mark.parametrize("mode,expect", [
    ("kod", "RATE"),
    ("unsync", "not synchronised"),
    ("forged", "origin"),
])
def test_scripted_bad_replies(scripted, mode, expect):
    server = scripted(mode)
    log = EventLog()
    with cm.Manager() as mgr:
        conn = mgr.sntp_connect(server.url, log)
        assert poll_until(mgr, lambda: cm.MG_EV_CLOSE in log.of(conn))
        (msg,) = log.data(cm.MG_EV_ERROR)
        assert "SNTP" in msg and expect in msg
        assert not log.data(cm.MG_EV_SNTP_TIME)


def test_sntp_request_elsewhere_is_false():
    with cm.Manager() as mgr:
        conn = mgr.listen("udp://127.0.0.1:0")
        assert conn.sntp_request() is False
        with pytest.raises(ValueError, match="no host"):
            mgr.sntp_connect("udp://:123")
