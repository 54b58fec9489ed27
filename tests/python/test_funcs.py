"""Module-level utilities, checked against Python's standard library.

Fixed cases first, then generated ones (hypothesis) comparing with json,
urllib.parse, hashlib, hmac, base64 and zlib.
"""
import base64
import binascii
import gc
import hashlib
import hmac
import json
import re
import sys
import tracemalloc
import urllib.parse
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cymongoose as cm

# Explicit per test, so that importing this file changes no global profile.
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ JSON
DOC = ('{"user": {"name": "Alice", "age": 30, "tags": ["a", "b"]}, "items": [{"id": 1}, {"id": 2}],'
       ' "ok": true, "no": false, "nil": null, "pi": 3.14, "neg": -99, "esc": "Line 1\\nLine 2",'
       ' "u": "\\u0048\\u00e9\\ud83d\\ude00"}')


def test_json_get_raw_tokens():
    assert cm.json_get(DOC, "$.user.name") == '"Alice"'
    assert cm.json_get(DOC, "$.user.age") == "30"
    assert cm.json_get(DOC, "$.user.tags") == '["a", "b"]'
    assert cm.json_get(DOC, "$.items[1].id") == "2"
    assert cm.json_get(DOC, "$.items[2]") is None
    assert cm.json_get(DOC, "$.user.missing") is None
    assert cm.json_get(DOC, "$.nil") == "null"
    assert json.loads(cm.json_get(DOC, "$")) == json.loads(DOC)
    assert cm.json_get("[[1,2],[3]]", "$[1][0]") == "3"
    assert cm.json_get(b'{"key": "value"}', "$.key") == '"value"'
    assert cm.json_get(bytearray(b"[5]"), "$[0]") == "5"
    assert cm.json_get(memoryview(b"[5, 6]")[:4], "$[0]") is None  # "[5, " is malformed


def test_json_typed_getters():
    assert cm.json_get_num(DOC, "$.pi") == 3.14
    assert cm.json_get_num(DOC, "$.user.age") == 30.0
    assert cm.json_get_num(DOC, "$.user.name") is None
    assert cm.json_get_num(DOC, "$.missing", 999) == 999
    assert cm.json_get_num(DOC, "$.missing", default=1.5) == 1.5
    assert cm.json_get_bool(DOC, "$.ok") is True
    assert cm.json_get_bool(DOC, "$.no") is False
    assert cm.json_get_bool(DOC, "$.nil") is None
    assert cm.json_get_bool(DOC, "$.missing", True) is True
    assert cm.json_get_long(DOC, "$.neg") == -99
    assert cm.json_get_long(DOC, "$.pi") == 3
    assert cm.json_get_long('{"f": -3.99}', "$.f") == -3
    assert cm.json_get_long(DOC, "$.missing") == 0
    assert cm.json_get_long(DOC, "$.missing", 777) == 777
    assert cm.json_get_long(DOC, "$.ok", default=5) == 5
    assert cm.json_get_long('{"id": 9876543210}', "$.id") == 9876543210
    big = 123456789012345678901234567890
    assert cm.json_get_long('[%d]' % big, "$[0]") == big
    assert cm.json_get_long('[1e400]', "$[0]", -1) == -1
    assert cm.json_get_num('[1e400]', "$[0]") == float("inf")
    assert cm.json_get_long('[2.5e3]', "$[0]") == 2500
    assert cm.json_get_str(DOC, "$.esc") == "Line 1\nLine 2"
    assert cm.json_get_str(DOC, "$.u") == "H\u00e9\U0001F600"
    assert cm.json_get_str(DOC, "$.user.age") is None
    assert cm.json_get_str(DOC, "$.missing") is None
    assert cm.json_get_str('{"path": "\\/home\\/user"}', "$.path") == "/home/user"


def test_json_lone_surrogates_match_python():
    for doc in ('["\\ud800"]', '["\\udc00x"]', '["a\\ud83d"]', '["\\ud83d\\u0041"]'):
        assert cm.json_get_str(doc, "$[0]") == json.loads(doc)[0]


def test_json_malformed_gives_none_or_default():
    for bad in ("", "{", '{"a":1,}', "[1 2]", "{'a': 1}", "NaN", '{"a": 01}', '"a\nb"',
                '{"a": [1, 2}', "[1]]", '{"a":1} x', "\xff", '{"a": tru}'):
        assert cm.json_get(bad, "$") is None, bad
        assert cm.json_get(bad, "$.a") is None, bad
        assert cm.json_get_num(bad, "$.a") is None
        assert cm.json_get_num(bad, "$.a", 7) == 7
        assert cm.json_get_bool(bad, "$.a", False) is False
        assert cm.json_get_long(bad, "$.a") == 0
        assert cm.json_get_str(bad, "$.a") is None
    # invalid UTF-8 inside a string (only possible with bytes input)
    assert cm.json_get_str(b'["\xff"]', "$[0]") is None


def test_json_depth_limit():
    deep = "[" * 1000 + "]" * 1000
    assert cm.json_get(deep, "$") is None
    assert cm.json_get(deep, "$", max_depth=1000) == deep
    assert cm.json_get("[[1]]", "$[0][0]", max_depth=1) is None
    with pytest.raises(ValueError):
        cm.json_get("[]", "$", max_depth=0)
    with pytest.raises(ValueError):
        cm.json_get("[]", "$", max_depth=10 ** 6)


def test_json_bad_arguments():
    for path in ("", "a.b", "$.", "$[x]", "$[1", "$..a", "$a"):
        with pytest.raises(ValueError):
            cm.json_get("{}", path)
    with pytest.raises(ValueError):
        cm.json_get("{}", "$\0")
    with pytest.raises(TypeError):
        cm.json_get(5, "$")
    with pytest.raises(TypeError):
        cm.json_get("{}")
    with pytest.raises(TypeError):
        cm.json_get_num("{}", "$", 1, 2)
    with pytest.raises(TypeError):
        cm.json_get("{}", "$", bogus=1)


# Keys usable in a path: no '.', '[' and not empty.
keys = st.text(st.characters(blacklist_characters=".[\0", blacklist_categories=("Cs",)), min_size=1,
               max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(keys, c, max_size=5),
                      max_leaves=25)


def all_paths(v, path="$"):
    yield path, v
    if isinstance(v, list):
        for i, x in enumerate(v):
            yield from all_paths(x, "%s[%d]" % (path, i))
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from all_paths(x, "%s.%s" % (path, k))


@settings(FAST, max_examples=100)
@given(values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_json_every_path_agrees_with_json_module(v, ascii_only, indent):
    doc = json.dumps(v, ensure_ascii=ascii_only, indent=indent)
    for path, expected in all_paths(v):
        raw = cm.json_get(doc, path)
        assert raw is not None, (doc, path)
        assert json.loads(raw) == expected
        if isinstance(expected, str):
            assert cm.json_get_str(doc, path) == expected
        else:
            assert cm.json_get_str(doc, path) is None
        if isinstance(expected, bool):
            assert cm.json_get_bool(doc, path) is expected
            assert cm.json_get_num(doc, path) is None
        elif isinstance(expected, (int, float)):
            assert cm.json_get_num(doc, path) == float(expected)
            assert cm.json_get_long(doc, path) == int(expected)
            assert cm.json_get_bool(doc, path) is None
    # one level past a scalar, or a missing member, is not found
    assert cm.json_get(doc, "$[999999]") is None
    assert cm.json_get(doc, "$.no-such-key-\u2603") is None


def reject_constant(name):
    raise ValueError(name)


def python_accepts(doc):
    try:
        json.loads(doc, parse_constant=reject_constant)
        return True
    except (ValueError, RecursionError):
        return False


@FAST
@given(values, st.data())
def test_json_validity_agrees_after_mutation(v, data):
    doc = json.dumps(v)
    pos = data.draw(st.integers(0, len(doc)))
    op = data.draw(st.sampled_from(["delete", "insert", "truncate"]))
    if op == "delete" and pos < len(doc):
        doc = doc[:pos] + doc[pos + 1:]
    elif op == "insert":
        doc = doc[:pos] + data.draw(st.sampled_from(list('{}[],:"\\ 0-.eE+tfnx\n\x01'))) + doc[pos:]
    else:
        doc = doc[:pos]
    assert (cm.json_get(doc, "$") is not None) == python_accepts(doc), doc


@FAST
@given(st.text(max_size=40))
def test_json_random_text_agrees(doc):
    assert (cm.json_get(doc, "$") is not None) == python_accepts(doc)


# ------------------------------------------------------------------ URLs
def test_url_fixed():
    assert cm.url_port("http://example.com:8080/path") == 8080
    for scheme, port in (("http", 80), ("https", 443), ("ws", 80), ("wss", 443), ("mqtt", 1883),
                         ("mqtts", 8883)):
        assert cm.url_port(scheme + "://example.com/path") == port
    assert cm.url_host("http://user:pass@example.com:80/") == "example.com"
    assert cm.url_host("http://[::1]:8000/x") == "[::1]"
    assert cm.url_host("http://[2001:db8::1]/") == "[2001:db8::1]"
    assert cm.url_port("http://[::1]:8000/x") == 8000
    assert cm.url_user("http://admin:secret@example.com/") == "admin"
    assert cm.url_user("http://admin@example.com/") == "admin"
    assert cm.url_user("http://example.com/") == ""
    assert cm.url_pass("http://admin:secret@example.com/") == "secret"
    assert cm.url_pass("http://example.com/") == ""
    assert cm.url_uri("http://example.com/api/v1") == "/api/v1"
    assert cm.url_uri("http://example.com") == "/"
    assert cm.url_uri("http://example.com/search?q=test") == "/search?q=test"
    assert cm.url_is_ssl("https://x") is True
    assert cm.url_is_ssl("wss://x") is True
    assert cm.url_is_ssl("mqtts://x") is True
    assert cm.url_is_ssl("http://x") is False
    assert cm.url_is_ssl("ws://x") is False
    assert cm.url_host(b"http://h:1/") == "h"
    with pytest.raises(ValueError):
        cm.url_host("http://a\0b/")
    with pytest.raises(TypeError):
        cm.url_port(80)


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "mqtt": 1883, "mqtts": 8883}
label = st.text("abcxyz019-", min_size=1, max_size=8)
hostnames = st.lists(label, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)
ipv6 = st.sampled_from(["::1", "2001:db8::1", "fe80::1:2", "::", "1:2:3:4:5:6:7:8"])
userinfo_text = st.text("abcXYZ019-._~%!$&'()*+,;=", min_size=1, max_size=8)
path_text = st.text("abcXYZ019-._~!$&'()*+,;=:@/%", max_size=12).map(lambda p: "/" + p)


@settings(FAST, max_examples=60)
@given(st.sampled_from(sorted(DEFAULT_PORTS)), hostnames | ipv4 | ipv6.map(lambda h: "[%s]" % h),
       st.none() | st.integers(1, 65535),
       st.none() | st.tuples(userinfo_text, st.none() | userinfo_text),
       st.none() | path_text, st.none() | st.text("a=1&b", max_size=6))
def test_url_parts_agree_with_urllib(scheme, host, port, auth, path, query):
    userinfo = ""
    if auth is not None:
        userinfo = auth[0] + ("" if auth[1] is None else ":" + auth[1]) + "@"
    url = "%s://%s%s%s%s" % (scheme, userinfo, host, "" if port is None else ":%d" % port, path or "")
    if query is not None and path is not None:
        url += "?" + query
    p = urllib.parse.urlsplit(url)
    assert cm.url_host(url) == (("[%s]" % p.hostname) if ":" in p.hostname else p.hostname)
    assert cm.url_port(url) == (p.port if p.port is not None else DEFAULT_PORTS[scheme])
    assert cm.url_user(url) == (p.username or "")
    assert cm.url_pass(url) == (p.password or "")
    expected_uri = p.path + ("?" + p.query if "?" in url else "")
    assert cm.url_uri(url) == (expected_uri or "/")
    assert cm.url_is_ssl(url) is (scheme in ("https", "wss", "mqtts"))


def test_url_encode_fixed():
    assert cm.url_encode("hello world") == "hello%20world"
    assert cm.url_encode("test@example.com") == "test%40example.com"
    assert cm.url_encode("a+b").lower() == "a%2bb"
    assert cm.url_encode("a&b=c").lower() == "a%26b%3dc"
    assert cm.url_encode("100%") == "100%25"
    assert cm.url_encode("hello\u4e16\u754c").lower() == "hello%e4%b8%96%e7%95%8c"
    assert cm.url_encode("") == ""
    assert cm.url_encode("test-file_name.txt~") == "test-file_name.txt~"
    assert cm.url_encode(b"\x00\xff") == "%00%FF"


@FAST
@given(st.text() | st.binary())
def test_url_encode_agrees_with_quote(s):
    if isinstance(s, str):
        try:
            s.encode()
        except UnicodeEncodeError:
            return
    assert cm.url_encode(s) == urllib.parse.quote(s, safe="")


def test_http_var_fixed():
    assert cm.http_var("foo=bar&baz=qux", "foo") == "bar"
    assert cm.http_var("foo=bar&baz=qux", "baz") == "qux"
    assert cm.http_var("foo=bar", "missing") is None
    assert cm.http_var("foo=&bar=1", "foo") == ""
    assert cm.http_var("msg=hello+world%21", "msg") == "hello world!"
    assert cm.http_var(b"key=val", "key") == "val"
    assert cm.http_var("", "foo") is None
    assert cm.http_var("a=%E4%B8%96&b=%zz%4", "a") == "\u4e16"
    assert cm.http_var("a=%E4%B8%96&b=%zz%4", "b") == "%zz%4"
    assert cm.http_var("n%61me=1", "name") == "1"
    assert cm.http_var("flag&x=1", "flag") == ""
    assert cm.http_var("x=" + "y" * 100000, "x") == "y" * 100000  # no fixed-size limit
    with pytest.raises(ValueError):
        cm.http_var("a=1", "a\0")


form_text = st.text(st.sampled_from(list("ab=&+%2F0E4x\u00e9")), max_size=30)


@FAST
@given(form_text, st.sampled_from(["a", "b", "ab", "a b", "", "a/", "\u00e9"]))
def test_http_var_agrees_with_parse_qsl(q, name):
    pairs = urllib.parse.parse_qsl(q, keep_blank_values=True)
    expected = next((v for k, v in pairs if k == name), None)
    assert cm.http_var(q, name) == expected


@FAST
@given(st.dictionaries(st.text(st.characters(blacklist_characters="\0"), min_size=1, max_size=6),
                       st.text(max_size=10), max_size=4))
def test_http_var_round_trips_urlencode(d):
    try:
        q = urllib.parse.urlencode(d)
    except UnicodeEncodeError:
        return
    for k, v in d.items():
        assert cm.http_var(q, k) == v


# ----------------------------------------------------------------- match
def test_match_fixed():
    assert cm.match("hello", "hello") == (True, [])
    assert cm.match("hello", "world") == (False, [])
    assert cm.match("", "") == (True, [])
    assert cm.match("abc", "a?c") == (True, ["b"])
    assert cm.match("abc", "???") == (True, ["a", "b", "c"])
    assert cm.match("ab", "???")[0] is False
    assert cm.match("foo/bar", "*/bar") == (True, ["foo"])
    assert cm.match("foo/bar", "*") == (False, [])
    assert cm.match("/api/users", "/api/*") == (True, ["users"])
    assert cm.match("foo/bar/baz", "#") == (True, ["foo/bar/baz"])
    assert cm.match("/a/b/c.txt", "#.txt") == (True, ["/a/b/c"])
    assert cm.match("/api/users/42", "/api/*/??") == (True, ["users", "4", "2"])
    assert cm.match(b"/x/y", b"/*/*") == (True, [b"x", b"y"])
    assert cm.match("/\u00e9t\u00e9", "/*") == (True, ["\u00e9t\u00e9"])
    s = "a" * 3000
    assert cm.match(s, "*a*a*a*a*a*a*a*a*a*a*a*a*b") == (False, [])


def reference_match(s, p):
    """Backtracking regex with lazy groups: earlier wildcards shortest."""
    rx = "".join({"?": "(.)", "*": "([^/]*?)", "#": "(.*?)"}.get(c, re.escape(c)) for c in p)
    m = re.fullmatch(rx, s, re.DOTALL)
    return (True, list(m.groups())) if m else (False, [])


@FAST
@given(st.text("ab/.", max_size=12), st.text("ab/.?*#", max_size=8))
def test_match_agrees_with_regex_reference(s, p):
    assert cm.match(s, p) == reference_match(s, p)


# ------------------------------------------------------- hashes and codecs
def test_hashes_fixed():
    assert cm.md5(b"abc").hex() == "900150983cd24fb0d6963f7d28e17f72"
    assert cm.sha1("abc") == hashlib.sha1(b"abc").digest()
    assert cm.sha256(b"") == hashlib.sha256(b"").digest()
    assert cm.hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    big = bytes(range(256)) * 1000  # hashed without the GIL
    assert cm.sha256(big) == hashlib.sha256(big).digest()
    assert cm.hmac_sha256(key=b"k", data=big) == hmac.new(b"k", big, hashlib.sha256).digest()
    with pytest.raises(TypeError):
        cm.md5(None)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=50), st.binary(max_size=100))
def test_hashes_agree_with_hashlib(data, key):
    raw = data.encode() if isinstance(data, str) else data
    assert cm.md5(data) == hashlib.md5(raw).digest()
    assert cm.sha1(data) == hashlib.sha1(raw).digest()
    assert cm.sha256(data) == hashlib.sha256(raw).digest()
    assert cm.hmac_sha256(key, data) == hmac.new(key, raw, hashlib.sha256).digest()


def test_base64_fixed():
    assert cm.base64_encode(b"") == ""
    assert cm.base64_encode(b"a") == "YQ=="
    assert cm.base64_encode(b"ab") == "YWI="
    assert cm.base64_encode("abc") == "YWJj"
    assert cm.base64_decode("") == b""
    assert cm.base64_decode("YQ==") == b"a"
    assert cm.base64_decode("YWI=") == b"ab"
    assert cm.base64_decode(b"YWJj") == b"abc"
    assert cm.base64_decode("YQ") == b"a"  # padding is optional
    for bad in ("Y", "YQ=", "YQ===", "Y Q==", "YQ==\n", "YQ==YQ==", "Y-Q_", "====", "\u00e9"):
        with pytest.raises(ValueError):
            cm.base64_decode(bad)


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_base64_agrees_with_base64_module(data, strip):
    enc = cm.base64_encode(data)
    assert enc == base64.b64encode(data).decode()
    if strip:
        enc = enc.rstrip("=")
    assert cm.base64_decode(enc) == data


@FAST
@given(st.text("ABCabc019+/=-_ \n", max_size=12))
def test_base64_decode_accepts_only_what_python_accepts(s):
    try:
        ours = cm.base64_decode(s)
    except ValueError:
        return
    padded = s + "=" * (-len(s) % 4)
    assert base64.b64decode(padded, validate=True) == ours


def test_crc32_fixed():
    assert cm.crc32(b"") == 0
    assert cm.crc32(b"hello") == binascii.crc32(b"hello")
    assert cm.crc32("hello") == zlib.crc32(b"hello")
    assert cm.crc32(b"lo", cm.crc32(b"hel")) == cm.crc32(b"hello")
    assert cm.crc32(b"x", initial=2 ** 32 + 5) == zlib.crc32(b"x", 5)
    with pytest.raises(TypeError):
        cm.crc32(b"x", "0")


@FAST
@given(st.binary(max_size=300), st.integers(0, 2 ** 32 - 1))
def test_crc32_agrees_with_zlib(data, initial):
    assert cm.crc32(data, initial) == zlib.crc32(data, initial)


def test_random():
    assert len(cm.random_bytes(16)) == 16
    assert cm.random_bytes(0) == b""
    assert cm.random_bytes(32) != cm.random_bytes(32)
    s = cm.random_str(200)
    assert len(s) == 200 and s.isascii() and s.isalnum()
    assert cm.random_str(0) == ""
    assert len(set(cm.random_str(2000))) == 62
    with pytest.raises(ValueError):
        cm.random_bytes(-1)
    with pytest.raises(ValueError):
        cm.random_str(-1)
    with pytest.raises(TypeError):
        cm.random_bytes("4")


def test_millis_log_event_name():
    a = cm.millis()
    b = cm.millis()
    assert 0 < a <= b
    old = cm.log_get()
    try:
        cm.log_set(cm.MG_LL_DEBUG)
        assert cm.log_get() == cm.MG_LL_DEBUG
        with pytest.raises(ValueError):
            cm.log_set(5)
    finally:
        cm.log_set(old)
    assert cm.event_name(cm.MG_EV_HTTP_MSG) == "MG_EV_HTTP_MSG"
    assert cm.event_name(cm.MG_EV_ERROR) == "MG_EV_ERROR"
    assert cm.event_name(cm.MG_EV_WAKEUP) == "MG_EV_WAKEUP"
    assert cm.event_name(cm.MG_EV_USER) == "MG_EV_USER"
    assert cm.event_name(cm.MG_EV_USER + 5) == "MG_EV_USER+5"
    assert cm.event_name(20) == "MG_EV_UNKNOWN(20)"
    assert cm.event_name(-1) == "MG_EV_UNKNOWN(-1)"
    assert cm.event_name(2 ** 80).startswith("MG_EV_")
    for name in dir(cm):
        if name.startswith("MG_EV_") and name != "MG_EV_USER":
            assert cm.event_name(getattr(cm, name)) == name


# -------------------------------------------------------------- leaks
def test_no_reference_leaks():
    sentinel = object()
    doc = DOC.encode()
    before = sys.getrefcount(sentinel), sys.getrefcount(doc)
    for _ in range(20000):
        cm.json_get_num(doc, "$.missing", sentinel)
        cm.json_get_bool(doc, "$.ok", sentinel)
        cm.json_get_long(doc, "$.nope", sentinel)
    assert (sys.getrefcount(sentinel), sys.getrefcount(doc)) == before


def test_no_memory_growth():
    doc = DOC
    big = b"x" * 70000

    def work():
        cm.json_get(doc, "$.user")
        cm.json_get_str(doc, "$.u")
        cm.json_get_long("[123456789012345678901234567890]", "$[0]")
        cm.json_get("{", "$")
        try:
            cm.json_get(doc, "$..")
        except ValueError:
            pass
        cm.match("/api/users/42", "/api/*/??")
        cm.http_var("a=1&b=2", "b")
        cm.url_encode("a b")
        cm.url_host("http://[::1]:1/")
        cm.sha256(big)
        cm.hmac_sha256("k", "d")
        cm.base64_decode(cm.base64_encode(b"abc"))
        try:
            cm.base64_decode("!")
        except ValueError:
            pass
        cm.crc32(b"abc", 1)
        cm.random_str(8)
        cm.event_name(99)

    for _ in range(200):  # warm caches
        work()
    gc.collect()
    tracemalloc.start()
    try:
        snap1 = tracemalloc.take_snapshot()
        for _ in range(5000):
            work()
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert growth < 64 * 1024, growth
