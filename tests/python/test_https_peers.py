"""Our HTTPS server against curl and openssl s_client, with certificates made
at test time by trustme (client.pem is the CA, issued for localhost and the
loopback addresses)."""
import concurrent.futures
import shutil
import subprocess

import pytest

import cymongoose as cm
from core_helpers import poll_until


def app(conn, ev, data):
    if ev == cm.MG_EV_HTTP_MSG:
        conn.reply(200, "secure " + data.method, {"X-Tls": "yes"})


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("peer-certs")
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(d), "-i",
                    "localhost", "127.0.0.1", "::1"], check=True, capture_output=True)
    return d


def serve_while(mgr, fn):
    """Runs blocking fn in a thread while the test thread polls mgr."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(fn)
        assert poll_until(mgr, fut.done)
        return fut.result()


def https_listener(mgr, certs):
    lst = mgr.listen("https://127.0.0.1:0")
    lst.tls_init(cm.TlsOpts(cert=(certs / "server.pem").read_bytes(),
                            key=(certs / "server.key").read_bytes()))
    return lst.local_addr[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_verifies_and_fetches(certs):
    with cm.Manager(app) as mgr:
        port = https_listener(mgr, certs)
        url = "https://localhost:%d/x" % port
        resolve = "localhost:%d:127.0.0.1" % port

        def curl(*extra):
            return subprocess.run(["curl", "-sS", "--cacert", str(certs / "client.pem"),
                                   "--resolve", resolve, *extra, url],
                                  capture_output=True, text=True, timeout=30)

        ok = serve_while(mgr, lambda: curl("-i"))
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("HTTP/1.1 200")
        assert "x-tls: yes" in ok.stdout.lower()
        assert ok.stdout.endswith("secure GET")
        # Two transfers in one curl run (curl keeps the TLS connection when it can).
        common = ["--cacert", str(certs / "client.pem"), "--resolve", resolve]
        two = serve_while(mgr, lambda: subprocess.run(
            ["curl", "-sS", *common, "-X", "POST", url, "--next", *common, url],
            capture_output=True, text=True, timeout=30))
        assert two.returncode == 0, two.stderr
        assert two.stdout == "secure POSTsecure GET"
        # Without the CA, curl must refuse our certificate.
        bad = serve_while(mgr, lambda: subprocess.run(
            ["curl", "-sS", "--resolve", resolve, url], capture_output=True, text=True, timeout=30))
        assert bad.returncode != 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_verifies_and_fetches(certs):
    with cm.Manager(app) as mgr:
        port = https_listener(mgr, certs)

        def s_client():
            return subprocess.run(
                ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                 str(certs / "client.pem"), "-servername", "localhost", "-verify_return_error",
                 "-quiet"],
                input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                capture_output=True, timeout=30)

        out = serve_while(mgr, s_client)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(b"HTTP/1.1 200")
        assert out.stdout.endswith(b"secure GET")
