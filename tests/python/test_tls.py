"""TLS from Python: TlsOpts, Connection.tls_init()/tls_free(), real peers
(the ssl module in a thread, openssl s_client), failures as ERROR events."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from cymongoose import (
    MG_EV_ACCEPT,
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_OPEN,
    MG_EV_READ,
    MG_EV_TLS_HS,
    Manager,
    TlsOpts,
)

from core_helpers import EventLog, poll_until


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """trustme certificates for localhost, 127.0.0.1, ::1; client.pem is the CA."""
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i", "localhost", "127.0.0.1", "::1"],
        check=True, capture_output=True,
    )
    read = lambda name: (d / name).read_text()  # noqa: E731
    return {
        "dir": d,
        "ca": read("client.pem"),
        "cert": read("server.pem"),
        "key": read("server.key"),
        "ca_path": str(d / "client.pem"),
        "cert_path": str(d / "server.pem"),
        "key_path": str(d / "server.key"),
    }


def server_opts(certs, as_bytes=False):
    if as_bytes:
        return TlsOpts(cert=certs["cert"].encode(), key=certs["key"].encode())
    return TlsOpts(cert=certs["cert"], key=certs["key"])


def echo_server(mgr, opts, log=None):
    """A TLS echo server on 127.0.0.1: tls_init on ACCEPT, as in the user guide."""
    def handler(conn, ev, data):
        if log is not None:
            log(conn, ev, data)
        if ev == MG_EV_ACCEPT:
            conn.tls_init(opts)
        elif ev == MG_EV_READ:
            conn.send(conn.recv_data())
            conn.recv_consume(conn.recv_len)
    return mgr.listen("tcp://127.0.0.1:0", handler)


def in_thread(fn):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as e:  # reported by the test
            result["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def test_tls_opts_attributes():
    o = TlsOpts(ca="CA", cert=b"CERT", key=None, name="localhost", skip_verification=True)
    assert (o.ca, o.cert, o.key, o.name) == (b"CA", b"CERT", b"", b"localhost")
    assert o.skip_verification is True
    d = TlsOpts()
    assert (d.ca, d.cert, d.key, d.name, d.skip_verification) == (b"", b"", b"", b"", False)
    assert "CERT" not in repr(TlsOpts(key="SECRET")) and "SECRET" not in repr(TlsOpts(key="SECRET"))
    with pytest.raises(TypeError):
        TlsOpts(ca=123)
    with pytest.raises(AttributeError):
        o.ca = b"x"


@pytest.mark.parametrize("as_bytes", [False, True])
def test_server_against_python_ssl_client(certs, as_bytes):
    log = EventLog()
    with Manager() as mgr:
        listener = echo_server(mgr, server_opts(certs, as_bytes), log)
        port = listener.local_addr[1]

        def client():
            ctx = ssl.create_default_context(cafile=certs["ca_path"])
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"ping over TLS")
                    got = b""
                    while len(got) < 13:
                        chunk = s.recv(100)
                        if not chunk:
                            break
                        got += chunk
                    return got, s.version()
        t, result = in_thread(client)
        assert poll_until(mgr, lambda: not t.is_alive())
        assert "error" not in result, result.get("error")
        got, version = result["value"]
        assert got == b"ping over TLS"
        assert version == "TLSv1.3"
        child = log.conns(MG_EV_ACCEPT)[0]
        assert MG_EV_TLS_HS in log.of(child)
        assert log.data(MG_EV_TLS_HS) == [None]
        assert not log.data(MG_EV_ERROR)


def python_ssl_server(certs, reply=b"HELLO FROM PYTHON"):
    """A one-shot ssl server in a thread: reads a line, replies, closes."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert_path"], certs["key_path"])
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve():
        srv.settimeout(20)
        try:
            conn, _ = srv.accept()
            conn.settimeout(20)
            with ctx.wrap_socket(conn, server_side=True) as s:
                line = s.recv(100)
                s.sendall(reply)
                return line
        finally:
            srv.close()
    t, result = in_thread(serve)
    return port, t, result


def test_client_against_python_ssl_server_tls_init_on_connect(certs):
    port, t, result = python_ssl_server(certs)
    got = []

    def handler(conn, ev, data):
        if ev == MG_EV_CONNECT:
            conn.tls_init(TlsOpts(ca=certs["ca"], name="localhost"))
        elif ev == MG_EV_TLS_HS:
            assert conn.is_tls
            conn.send(b"hi\n")
        elif ev == MG_EV_READ:
            got.append(conn.recv_data())
            conn.recv_consume(conn.recv_len)
    log = EventLog(handler)
    with Manager() as mgr:
        c = mgr.connect(f"tcp://127.0.0.1:{port}", log)
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
    t.join(5)
    assert "error" not in result, result.get("error")
    assert result["value"] == b"hi\n"
    assert b"".join(got) == b"HELLO FROM PYTHON"
    assert not log.data(MG_EV_ERROR)


def test_tls_scheme_starts_tls_by_itself(certs, monkeypatch):
    # Safe defaults: the system store does not know the trustme CA ...
    port, t, _ = python_ssl_server(certs)
    log = EventLog()
    with Manager() as mgr:
        c = mgr.connect(f"tls://localhost:{port}", log)
        assert c.is_tls
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
    errors = log.data(MG_EV_ERROR)
    assert len(errors) == 1 and "unable to get local issuer certificate" in errors[0]
    t.join(5)
    # ... and trusts it once SSL_CERT_FILE points at it (a new manager: contexts are cached).
    monkeypatch.setenv("SSL_CERT_FILE", certs["ca_path"])
    port, t, result = python_ssl_server(certs)

    def send_on_hs(conn, ev, data):
        if ev == MG_EV_TLS_HS:
            conn.send(b"auto\n")
    log = EventLog(send_on_hs)
    with Manager() as mgr:
        c = mgr.connect(f"tls://localhost:{port}", log)
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
    t.join(5)
    assert not log.data(MG_EV_ERROR)
    assert result.get("value") == b"auto\n"


def client_errors(certs, opts):
    """Our client with opts against our TLS echo server; the client's ERRORs."""
    log = EventLog()
    srv_log = EventLog()
    with Manager() as mgr:
        listener = echo_server(mgr, server_opts(certs), srv_log)

        def handler(conn, ev, data):
            log(conn, ev, data)
            if ev == MG_EV_OPEN:
                conn.tls_init(opts)
            if ev == MG_EV_TLS_HS:
                conn.send(b"x")
            if ev == MG_EV_READ:
                conn.close()
        c = mgr.connect(f"tcp://127.0.0.1:{listener.local_addr[1]}", handler)
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
        poll_until(mgr, lambda: False, timeout=0.1)
    return log.data(MG_EV_ERROR), srv_log.data(MG_EV_ERROR)


def test_wrong_ca(certs):
    other = subprocess.run([sys.executable, "-c", "import trustme; print(trustme.CA().cert_pem.bytes().decode())"],
                           capture_output=True, text=True)
    if other.returncode != 0:  # the first python3 on PATH may lack trustme
        other = subprocess.run(["/usr/bin/python3", "-c",
                                "import trustme; print(trustme.CA().cert_pem.bytes().decode())"],
                               capture_output=True, text=True, check=True)
    errors, srv_errors = client_errors(certs, TlsOpts(ca=other.stdout, name="localhost"))
    assert len(errors) == 1
    assert "certificate verify failed" in errors[0]
    assert len(srv_errors) == 1 and "unknown ca" in srv_errors[0]


def test_wrong_name(certs):
    errors, _ = client_errors(certs, TlsOpts(ca=certs["ca"], name="example.com"))
    assert len(errors) == 1 and "hostname mismatch" in errors[0]


def test_right_name_and_ip(certs):
    for name in ("localhost", "127.0.0.1", None):
        errors, _ = client_errors(certs, TlsOpts(ca=certs["ca"], name=name))
        assert errors == []


def test_bad_pem_is_an_error_event_and_a_warning_not_an_exception(certs):
    log = EventLog()
    with Manager() as mgr:
        def handler(conn, ev, data):
            log(conn, ev, data)
            if ev == MG_EV_ACCEPT:
                with pytest.warns(RuntimeWarning, match="bad certificate PEM"):
                    conn.tls_init(TlsOpts(cert="garbage", key=certs["key"]))  # must not raise
        listener = mgr.listen("tcp://127.0.0.1:0", handler)
        cli = EventLog()

        def client(conn, ev, data):
            cli(conn, ev, data)
            if ev == MG_EV_OPEN:
                conn.tls_init(TlsOpts(ca=certs["ca"], name="localhost"))
        c = mgr.connect(f"tcp://127.0.0.1:{listener.local_addr[1]}", client)
        assert poll_until(mgr, lambda: MG_EV_CLOSE in cli.of(c))
        errors = log.data(MG_EV_ERROR)
        assert len(errors) == 1 and "bad certificate PEM" in errors[0]
        assert len(cli.data(MG_EV_ERROR)) == 1 and "TLS handshake failed" in cli.data(MG_EV_ERROR)[0]


@pytest.mark.parametrize("where", ["outside", "open", "listener"])
def test_bad_options_error_comes_later_and_may_close_the_manager(certs, where):
    # The ERROR of bad options used to be delivered from inside tls_init(),
    # outside the bracket of the Python layer: a handler closing the manager
    # there freed the connection the core then touched (ASan:
    # heap-use-after-free in cm_close).  Now it comes from the next poll.
    seen = []
    in_call = []
    errors_in_call = []
    mgr = Manager()

    def handler(conn, ev, data):
        seen.append(ev)
        if ev == MG_EV_OPEN and where == "open" and conn.is_client:
            in_call.append(True)
            conn.tls_init(TlsOpts(ca="not a PEM"))
            in_call.pop()
        if ev == MG_EV_ERROR:
            errors_in_call.append(bool(in_call))
            mgr.close()

    with pytest.warns(RuntimeWarning, match="bad CA PEM|bad certificate PEM"):
        listener = mgr.listen("tcp://127.0.0.1:0", handler)
        if where == "listener":
            listener.tls_init(TlsOpts(cert="not a PEM"))  # its children fail
        target = mgr.connect(f"tcp://127.0.0.1:{listener.local_addr[1]}", handler)
        if where == "outside":
            target.tls_init(TlsOpts(ca="not a PEM"))
    assert MG_EV_ERROR not in seen  # not from inside the call
    assert not mgr.closed
    assert poll_until(mgr, lambda: mgr.closed)
    assert errors_in_call == [False]  # one ERROR, from the poll
    assert seen[-1] == MG_EV_CLOSE
    assert target.is_closing  # detached by the close


def test_listener_options_and_is_tls(certs):
    log = EventLog()
    with Manager() as mgr:
        def handler(conn, ev, data):
            log(conn, ev, data)
            if ev == MG_EV_READ:
                conn.send(conn.recv_data())
                conn.recv_consume(conn.recv_len)
        listener = mgr.listen("tcp://127.0.0.1:0", handler)
        assert not listener.is_tls
        listener.tls_init(server_opts(certs))
        assert listener.is_tls
        got = []

        def client(conn, ev, data):
            if ev == MG_EV_OPEN:
                conn.tls_init(TlsOpts(ca=certs["ca"]))
            elif ev == MG_EV_TLS_HS:
                conn.send(b"via listener")
            elif ev == MG_EV_READ:
                got.append(conn.recv_data())
                conn.recv_consume(conn.recv_len)
                conn.close()
        c = mgr.connect(f"tcp://127.0.0.1:{listener.local_addr[1]}", client)
        assert c.is_tls
        assert poll_until(mgr, lambda: got)
        assert got == [b"via listener"]
        child = log.conns(MG_EV_ACCEPT)[0]
        assert child.is_tls
        # A bad option set on a listener: a RuntimeWarning with the reason,
        # the listener stays open, and each connection it accepts gets an
        # ERROR with the reason (nothing is served in the clear).
        bad_log = EventLog()
        bad = mgr.listen("tcp://127.0.0.1:0", bad_log)
        with pytest.warns(RuntimeWarning, match="bad certificate PEM"):
            bad.tls_init(TlsOpts(cert="nope"))
        assert not bad.is_closing and bad_log.data(MG_EV_ERROR) == []
        c2 = mgr.connect(f"tcp://127.0.0.1:{bad.local_addr[1]}", cli_log := EventLog())
        assert poll_until(mgr, lambda: MG_EV_CLOSE in cli_log.of(c2))
        errors = bad_log.data(MG_EV_ERROR)
        assert len(errors) == 1 and "bad certificate PEM" in errors[0]
        assert not bad.is_closing


def test_tls_init_after_handshake_raises_and_tls_free(certs):
    with Manager() as mgr:
        listener = echo_server(mgr, server_opts(certs))
        log = EventLog()
        c = mgr.connect(f"tcp://127.0.0.1:{listener.local_addr[1]}", log)
        c.tls_init(TlsOpts(ca=certs["ca"]))
        assert poll_until(mgr, lambda: MG_EV_TLS_HS in log.of(c))
        with pytest.raises(RuntimeError):
            c.tls_init(TlsOpts(ca=certs["ca"]))
        with pytest.raises(TypeError):
            c.tls_init("not options")
        c.close()
        assert poll_until(mgr, lambda: MG_EV_CLOSE in log.of(c))
        with pytest.raises(RuntimeError):
            c.tls_free()
        # https:// turns TLS on by itself; tls_free() before the connect turns it off.
        plain = mgr.listen("tcp://127.0.0.1:0", lambda conn, ev, data: None)
        d = mgr.connect(f"https://127.0.0.1:{plain.local_addr[1]}")
        assert d.is_tls
        d.tls_free()
        assert not d.is_tls
        d.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_openssl_s_client_against_our_server(certs):
    with Manager() as mgr:
        listener = echo_server(mgr, server_opts(certs))
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{listener.local_addr[1]}",
             "-CAfile", certs["ca_path"], "-servername", "localhost", "-verify_return_error",
             "-verify_hostname", "localhost", "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            proc.stdin.write(b"hello s_client\n")
            proc.stdin.flush()
            out = {}

            def read_line():
                out["line"] = proc.stdout.readline()
            t, _ = in_thread(read_line)
            assert poll_until(mgr, lambda: not t.is_alive())
            assert out["line"] == b"hello s_client\n"
        finally:
            proc.terminate()
            proc.wait(5)


def test_handshake_timeout_is_an_error(certs):
    opts = TlsOpts(cert=certs["cert"], key=certs["key"], handshake_timeout_ms=200)
    assert opts.handshake_timeout_ms == 200
    log = EventLog()
    with Manager() as mgr:
        listener = echo_server(mgr, opts, log)
        silent = socket.create_connection(("127.0.0.1", listener.local_addr[1]))
        try:
            assert poll_until(mgr, lambda: log.data(MG_EV_ERROR))
            assert log.data(MG_EV_ERROR) == ["TLS handshake timed out after 200 ms"]
        finally:
            silent.close()


def raw_https_server(mgr, certs):
    """A fixed HTTP response over TLS, written by hand (no HTTP layer)."""
    def handler(conn, ev, data):
        if ev == MG_EV_READ and b"\r\n\r\n" in conn.recv_data():
            conn.recv_consume(conn.recv_len)
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            conn.drain()  # close_notify follows the response
    listener = mgr.listen("tcp://127.0.0.1:0", handler)
    listener.tls_init(server_opts(certs))
    return listener.local_addr[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_over_tls(certs):
    with Manager() as mgr:
        port = raw_https_server(mgr, certs)
        t, result = in_thread(lambda: subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", certs["ca_path"],
             f"https://127.0.0.1:{port}/"], capture_output=True))
        assert poll_until(mgr, lambda: not t.is_alive())
    proc = result["value"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello"


def test_requests_over_tls(certs):
    requests = pytest.importorskip("requests")
    with Manager() as mgr:
        port = raw_https_server(mgr, certs)
        t, result = in_thread(lambda: requests.get(f"https://127.0.0.1:{port}/",
                                                   verify=certs["ca_path"], timeout=20))
        assert poll_until(mgr, lambda: not t.is_alive())
    assert "error" not in result, result.get("error")
    assert result["value"].status_code == 200
    assert result["value"].text == "hello"


def test_garbage_record_after_handshake_is_an_error(certs):
    log = EventLog()
    with Manager() as mgr:
        listener = echo_server(mgr, server_opts(certs), log)
        port = listener.local_addr[1]

        def forger():
            ctx = ssl.create_default_context(cafile=certs["ca_path"])
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        sock.sendall(outgoing.read())
                        incoming.write(sock.recv(65536))
                sock.sendall(outgoing.read())
                # An application-data record whose contents are noise.
                sock.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
                try:
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
        t, result = in_thread(forger)
        assert poll_until(mgr, lambda: not t.is_alive())
        assert "error" not in result, result.get("error")
        errors = log.data(MG_EV_ERROR)
        assert len(errors) == 1 and errors[0].startswith("TLS: "), errors
        assert "bad record mac" in errors[0] or "decrypt" in errors[0], errors


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_http_error_reply_half_closes(certs, tls):
    """A refused request (413) is answered, then the server half-closes
    (lingering close): under TLS close_notify, then the TCP FIN, with the
    connection still open for reading, so a client that goes on sending
    gets no reset.  The peer sees a clean end of stream (with
    suppress_ragged_eofs=False a FIN without close_notify would raise) while
    the server's connection is still open; it closes once the client has
    closed its side."""
    log = EventLog()
    got_eof, may_close = threading.Event(), threading.Event()
    with Manager(log) as mgr:
        listener = mgr.listen("http://127.0.0.1:0", http_max_body=4)
        if tls:
            listener.tls_init(server_opts(certs))
        port = listener.local_addr[1]

        def client():
            raw = socket.create_connection(("127.0.0.1", port))
            s = raw
            if tls:
                ctx = ssl.create_default_context(cafile=certs["ca_path"])
                s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
            with s:
                s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
                s.sendall(b"j" * 20000)  # a body the server refused: lingering discards it
                got = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                got_eof.set()
                may_close.wait(20)
                if tls:
                    raw = s.unwrap()  # our close_notify; the FIN was already there
                    tail = raw.recv(100)
                    raw.close()
                    return got, tail
                return got, b""
        t, result = in_thread(client)
        assert poll_until(mgr, lambda: got_eof.is_set() or not t.is_alive())
        child = log.conns(MG_EV_ACCEPT)[0]
        assert MG_EV_CLOSE not in log.of(child)  # only our side is closed
        may_close.set()
        assert poll_until(mgr, lambda: not t.is_alive() and MG_EV_CLOSE in log.of(child))
    assert "error" not in result, result.get("error")
    got, tail = result["value"]
    assert got.startswith(b"HTTP/1.1 413 ")
    assert tail == b""
    assert not log.data(MG_EV_ERROR)
