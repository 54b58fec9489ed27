"""Cross-checks of the C WebSocket codecs (src/ws/) against independent
implementations: the `websockets` library (frames, accept key,
permessage-deflate negotiation and compression) and CPython's UTF-8 decoder.

The C library is loaded with ctypes from build/libcymongoose.so, which the
module fixture builds with `make lib` (incremental, cheap when up to date).
"""
import ctypes
import os
import random
import subprocess
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from websockets.extensions import permessage_deflate as pmd
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.streams import StreamReader
from websockets.utils import accept_key

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class WsFrame(ctypes.Structure):
    _fields_ = [
        ("first_byte", ctypes.c_uint8),
        ("opcode", ctypes.c_uint8),
        ("rsv", ctypes.c_uint8),
        ("fin", ctypes.c_bool),
        ("masked", ctypes.c_bool),
        ("mask", ctypes.c_uint8 * 4),
        ("header_len", ctypes.c_uint8),
        ("payload_len", ctypes.c_uint64),
    ]


class WsLimits(ctypes.Structure):
    _fields_ = [
        ("max_frame_size", ctypes.c_uint64),
        ("max_message_size", ctypes.c_uint64),
        ("allowed_rsv", ctypes.c_uint8),
    ]


class DeflateParams(ctypes.Structure):
    _fields_ = [
        ("server_no_context_takeover", ctypes.c_bool),
        ("client_no_context_takeover", ctypes.c_bool),
        ("server_max_window_bits", ctypes.c_uint8),
        ("client_max_window_bits", ctypes.c_uint8),
        ("client_max_window_bits_bare", ctypes.c_bool),
    ]


class DeflateOpts(ctypes.Structure):
    _fields_ = [
        ("server_no_context_takeover", ctypes.c_bool),
        ("client_no_context_takeover", ctypes.c_bool),
        ("server_max_window_bits", ctypes.c_uint8),
        ("client_max_window_bits", ctypes.c_uint8),
    ]


class Buf(ctypes.Structure):
    _fields_ = [
        ("ptr", ctypes.POINTER(ctypes.c_uint8)),
        ("off", ctypes.c_size_t),
        ("len", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
    ]

    def take(self):
        data = ctypes.string_at(ctypes.addressof(self.ptr.contents) + self.off, self.len) if self.len else b""
        self.len = 0
        self.off = 0
        return data


@pytest.fixture(scope="module")
def lib():
    subprocess.run(["make", "-s", "lib"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    so = ctypes.CDLL(os.path.join(ROOT, "build", "libcymongoose.so"))
    so.cm_ws_parse_frame.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(WsFrame),
                                     ctypes.POINTER(WsLimits), ctypes.c_bool]
    so.cm_ws_mask.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_uint64]
    so.cm_ws_mask.restype = None
    so.cm_ws_encode_header.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_char_p]
    so.cm_ws_encode_header.restype = ctypes.c_size_t
    so.cm_utf8_valid.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    so.cm_utf8_valid.restype = ctypes.c_bool
    so.cm_ws_accept_key.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    so.cm_ws_deflate_accept.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(DeflateOpts),
                                        ctypes.POINTER(DeflateParams)]
    so.cm_ws_deflate_check_response.argtypes = so.cm_ws_deflate_accept.argtypes
    so.cm_ws_deflate_format.argtypes = [ctypes.POINTER(DeflateParams), ctypes.c_char_p, ctypes.c_size_t]
    so.cm_ws_deflate_format_offer.argtypes = [ctypes.POINTER(DeflateOpts), ctypes.c_char_p, ctypes.c_size_t]
    so.cm_ws_deflate_new.argtypes = [ctypes.POINTER(DeflateParams), ctypes.c_bool, ctypes.c_int]
    so.cm_ws_deflate_new.restype = ctypes.c_void_p
    so.cm_ws_deflate_free.argtypes = [ctypes.c_void_p]
    so.cm_ws_deflate_compress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                          ctypes.POINTER(Buf)]
    so.cm_ws_deflate_decompress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                            ctypes.c_bool, ctypes.POINTER(Buf), ctypes.c_uint64]
    so.cm_buf_free.argtypes = [ctypes.POINTER(Buf)]
    so.cm_buf_free.restype = None
    return so


def parse_with_websockets(data, mask):
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = Frame.parse(reader.read_exact, mask=mask)
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("websockets wanted more data")


LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("mask", [False, True])
def test_frames_from_websockets_parse_in_c(lib, length, mask):
    data = bytes(random.Random(length).randrange(256) for _ in range(length))
    for opcode, fin in [(Opcode.BINARY, True), (Opcode.TEXT, False), (Opcode.CONT, True), (Opcode.PING, True)]:
        if opcode == Opcode.PING and length > 125:
            continue
        payload = data if opcode != Opcode.TEXT else b"x" * length
        wire = Frame(opcode, payload, fin=fin).serialize(mask=mask)
        f = WsFrame()
        hlen = lib.cm_ws_parse_frame(wire, len(wire), ctypes.byref(f), None, mask)
        assert hlen == f.header_len == len(wire) - length
        assert f.payload_len == length
        assert f.fin == fin and f.opcode == opcode.value and f.masked == mask
        assert f.first_byte == wire[0]
        body = ctypes.create_string_buffer(wire[hlen:], length)
        lib.cm_ws_mask(body, length, bytes(f.mask), 0)
        assert body.raw == payload
        # Every prefix of the header is "need more", never an error.
        for k in range(hlen):
            assert lib.cm_ws_parse_frame(wire, k, ctypes.byref(f), None, mask) == 0


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("mask", [False, True])
def test_frames_from_c_parse_in_websockets(lib, length, mask):
    data = os.urandom(length)
    key = os.urandom(4) if mask else None
    hdr = ctypes.create_string_buffer(14)
    n = lib.cm_ws_encode_header(hdr, 0x82, length, key)
    body = ctypes.create_string_buffer(data, length)
    if mask:
        lib.cm_ws_mask(body, length, key, 0)
    frame = parse_with_websockets(hdr.raw[:n] + body.raw[:length], mask)
    assert frame.opcode == Opcode.BINARY and frame.fin and frame.data == data


def test_accept_key_matches_websockets(lib):
    import base64
    out = ctypes.create_string_buffer(29)
    for _ in range(200):
        key = base64.b64encode(os.urandom(16))
        assert lib.cm_ws_accept_key(key, len(key), out) == 0
        assert out.value.decode() == accept_key(key.decode())


# Bytes biased towards UTF-8 structure, so that valid and nearly-valid
# multi-byte sequences are common.
utf8ish = st.lists(
    st.one_of(st.integers(0, 0x7F), st.integers(0x80, 0xBF), st.integers(0xC0, 0xFF),
              st.sampled_from([0xE0, 0xED, 0xF0, 0xF4, 0x80, 0x9F, 0xA0, 0x8F, 0x90])),
    max_size=40).map(bytes)


# Code points of any kind, surrogates included, encoded (surrogates then
# give invalid UTF-8).  Built from integers rather than st.text(), which
# would leave a Unicode cache directory in the tree.
code_points = st.lists(st.integers(0, 0x10FFFF), max_size=20).map(
    lambda cps: "".join(map(chr, cps)).encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(utf8ish, st.binary(max_size=40), code_points))
def test_utf8_validator_agrees_with_cpython(lib, data):
    try:
        data.decode("utf-8", "strict")
        expected = True
    except UnicodeDecodeError:
        expected = False
    assert lib.cm_utf8_valid(data, len(data)) == expected


def test_utf8_validator_agrees_with_cpython_on_many_random_strings(lib):
    rnd = random.Random(11)
    alphabet = list(range(0x80)) + list(range(0x80, 0x100)) * 2 + [0xE0, 0xED, 0xF0, 0xF4] * 20
    valid_seen = 0
    for _ in range(100000):
        data = bytes(rnd.choice(alphabet) for _ in range(rnd.randrange(12)))
        try:
            data.decode("utf-8", "strict")
            expected = True
        except UnicodeDecodeError:
            expected = False
        valid_seen += expected
        assert lib.cm_utf8_valid(data, len(data)) == expected, data
    assert valid_seen > 1000  # the sample exercised both answers


def fmt(lib, fn, arg):
    out = ctypes.create_string_buffer(160)
    n = fn(ctypes.byref(arg), out, 160)
    assert n > 0
    return out.value.decode()


OPTS = [
    DeflateOpts(),
    DeflateOpts(True, False, 0, 0),
    DeflateOpts(False, True, 12, 0),
    DeflateOpts(True, True, 10, 11),
]


@pytest.mark.parametrize("opts", OPTS, ids=range(len(OPTS)))
def test_our_offer_accepted_by_websockets_server(lib, opts):
    offer = fmt(lib, lib.cm_ws_deflate_format_offer, opts)
    [(name, params)] = parse_extension(offer)
    for server in [pmd.ServerPerMessageDeflateFactory(),
                   pmd.ServerPerMessageDeflateFactory(server_no_context_takeover=True,
                                                      client_max_window_bits=10)]:
        response_params, _ = server.process_request_params(params, [])
        response = build_extension([(name, response_params)])
        agreed = DeflateParams()
        assert lib.cm_ws_deflate_check_response(response.encode(), len(response), ctypes.byref(opts),
                                                ctypes.byref(agreed)) == 1, response


@pytest.mark.parametrize("client", [
    pmd.ClientPerMessageDeflateFactory(),
    pmd.ClientPerMessageDeflateFactory(client_max_window_bits=None),
    pmd.ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True,
                                       server_max_window_bits=10, client_max_window_bits=12),
])
@pytest.mark.parametrize("opts", OPTS, ids=range(len(OPTS)))
def test_websockets_offer_accepted_by_us(lib, client, opts):
    offer = build_extension([(client.name, client.get_request_params())])
    agreed = DeflateParams()
    assert lib.cm_ws_deflate_accept(offer.encode(), len(offer), ctypes.byref(opts), ctypes.byref(agreed)) == 1
    response = fmt(lib, lib.cm_ws_deflate_format, agreed)
    [(_, params)] = parse_extension(response)
    ext = client.process_response_params(params, [])
    assert isinstance(ext, pmd.PerMessageDeflate)


def messages():
    rnd = random.Random(5)
    out = [b"", b"Hello", b"Hello", "κόσμε".encode() * 50]
    out += [bytes(rnd.randrange(256) for _ in range(n)) for n in (1, 1000, 70000)]
    out += [b"the quick brown fox " * 5000, b""]
    return out


@pytest.mark.parametrize("no_context", [False, True])
def test_deflate_interop_with_websockets(lib, no_context):
    params = DeflateParams(no_context, no_context, 0, 0, False)
    # websockets' side of a connection whose server is us.
    theirs = pmd.PerMessageDeflate(remote_no_context_takeover=no_context, local_no_context_takeover=no_context,
                                   remote_max_window_bits=15, local_max_window_bits=15)
    ours = lib.cm_ws_deflate_new(ctypes.byref(params), True, -1)
    buf = Buf()
    try:
        for msg in messages():
            # Theirs -> ours, as a message in up to three fragments.
            pieces = [msg] if len(msg) < 3 else [msg[: len(msg) // 3], msg[len(msg) // 3: len(msg) // 2],
                                                 msg[len(msg) // 2:]]
            frames = [Frame(Opcode.BINARY if i == 0 else Opcode.CONT, p, fin=(i == len(pieces) - 1))
                      for i, p in enumerate(pieces)]
            for i, fr in enumerate(frames):
                enc = theirs.encode(fr)
                assert enc.rsv1 == (i == 0)
                r = lib.cm_ws_deflate_decompress(ours, enc.data, len(enc.data), enc.fin, ctypes.byref(buf), 0)
                assert r == 0
            assert buf.take() == msg
            # Ours -> theirs.
            assert lib.cm_ws_deflate_compress(ours, msg, len(msg), ctypes.byref(buf)) == 0
            wire = buf.take()
            dec = theirs.decode(Frame(Opcode.BINARY, wire, rsv1=True))
            assert dec.data == msg
            # And Python's zlib agrees on the raw stream (fresh decoder only
            # when no context is carried over).
            if no_context:
                assert zlib.decompressobj(-15).decompress(wire + b"\x00\x00\xff\xff") == msg
    finally:
        lib.cm_buf_free(ctypes.byref(buf))
        lib.cm_ws_deflate_free(ours)
