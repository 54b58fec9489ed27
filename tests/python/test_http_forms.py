"""Multipart uploads and Basic credentials, sent by python3-requests."""
import base64

import pytest
import requests

import cymongoose as cm
from test_http import Server


def app(conn, ev, data):
    if ev != cm.MG_EV_HTTP_MSG:
        return
    if data.uri == "/upload":
        parts, offset = [], 0
        while True:
            offset, part = cm.http_parse_multipart(data.body_bytes, offset)
            if part is None:
                break
            parts.append([part["name"], part["filename"], part["body"].hex()])
        conn.reply_json(parts)
    elif data.uri == "/private":
        creds = data.basic_auth()
        if creds != ("alice", "s3cr:et é"):
            conn.reply(401, "who are you?", {"WWW-Authenticate": 'Basic realm="test"'})
        else:
            conn.reply(200, "welcome " + creds[0])


@pytest.fixture
def server():
    s = Server(app)
    yield s
    s.close()


def test_multipart_upload_from_requests(server):
    blob = bytes(range(256)) * 40  # binary, with CR LF and dashes inside
    files = {"doc": ("report.bin", blob), "note": (None, "just text")}
    got = server.run(lambda: requests.post(server.base + "/upload", files=files, timeout=10).json())
    assert got == [["doc", "report.bin", blob.hex()], ["note", "", b"just text".hex()]]


def test_multipart_edge_cases():
    assert cm.http_parse_multipart(b"") == (0, None)
    assert cm.http_parse_multipart(b"not multipart at all") == (0, None)
    body = b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n"
    offset, part = cm.http_parse_multipart(body)
    assert part == {"name": "x", "filename": "", "body": b"1"}
    assert cm.http_parse_multipart(body, offset) == (0, None)
    assert cm.http_parse_multipart(body, 10**9) == (0, None)
    with pytest.raises(ValueError):
        cm.http_parse_multipart(body, -1)
    truncated = body[:30]
    assert cm.http_parse_multipart(truncated) == (0, None)


def test_basic_credentials_from_requests(server):
    ok = server.run(lambda: requests.get(server.base + "/private", auth=("alice", "s3cr:et é"),
                                         timeout=10))
    assert (ok.status_code, ok.text) == (200, "welcome alice")
    bad = server.run(lambda: requests.get(server.base + "/private", auth=("alice", "nope"),
                                          timeout=10))
    assert bad.status_code == 401
    none = server.run(lambda: requests.get(server.base + "/private", timeout=10))
    assert none.status_code == 401
    garbage = server.run(lambda: requests.get(server.base + "/private", timeout=10,
                                              headers={"Authorization": "Basic !!!"}))
    assert garbage.status_code == 401
    nocolon = base64.b64encode(b"alice").decode()
    r = server.run(lambda: requests.get(server.base + "/private", timeout=10,
                                        headers={"Authorization": "Basic " + nocolon}))
    assert r.status_code == 401


def test_basic_credentials_in_utf8(server):
    token = base64.b64encode("alice:s3cr:et é".encode("utf-8")).decode()
    r = server.run(lambda: requests.get(server.base + "/private", timeout=10,
                                        headers={"Authorization": "basic  " + token}))
    assert (r.status_code, r.text) == (200, "welcome alice")
