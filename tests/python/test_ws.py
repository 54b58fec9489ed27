"""WebSocket server and client against real peers: websocket-client,
websockets (asyncio) and node's ws, plus raw sockets for broken frames."""
import asyncio
import os
import shutil
import socket
import struct
import subprocess
import threading

import pytest
import websocket
import websockets

import cymongoose as cm
from core_helpers import DEADLINE_S, poll_until

SIZES = [0, 125, 126, 65535, 65536, 16 * 1024 * 1024]
NODE_ENV = dict(os.environ, NODE_PATH="/usr/share/nodejs")
HAVE_NODE = shutil.which("node") is not None and os.path.isdir("/usr/share/nodejs/ws")


# ------------------------------------------------------------------ helpers

class EchoServer:
    """Our Python server: upgrades every HTTP request, echoes messages."""

    def __init__(self, upgrade_kwargs=None, on_msg=None):
        self.events = []  # (ev, op, flags, data, close_code, close_reason)
        self.errors = []
        self.upgrade_kwargs = upgrade_kwargs or {}
        self.on_msg = on_msg
        self.mgr = cm.Manager(self.handler)
        self.listener = self.mgr.listen("http://127.0.0.1:0")
        self.port = self.listener.local_addr[1]
        self.url = "ws://127.0.0.1:%d/ws" % self.port

    def handler(self, conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.ws_upgrade(data, **self.upgrade_kwargs)
        elif ev == cm.MG_EV_ERROR:
            self.errors.append(data)
        elif ev in (cm.MG_EV_WS_MSG, cm.MG_EV_WS_CTL):
            self.events.append((ev, data.op, data.flags, data.data, data.close_code,
                                data.close_reason))
            if ev == cm.MG_EV_WS_MSG:
                if self.on_msg is not None:
                    self.on_msg(conn, data)
                else:
                    conn.ws_send(data.data, data.op)

    def msgs(self):
        return [e for e in self.events if e[0] == cm.MG_EV_WS_MSG]

    def ctls(self):
        return [e for e in self.events if e[0] == cm.MG_EV_WS_CTL]

    def close(self):
        self.mgr.close()


@pytest.fixture
def server():
    s = EchoServer()
    yield s
    s.close()


def run_peer(mgr, fn, *args):
    """Runs fn(*args) in a thread while polling mgr; returns its result."""
    box = {}

    def target():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # handed to the test thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    assert poll_until(mgr, lambda: not t.is_alive(), timeout=60), "peer hung"
    if "error" in box:
        raise box["error"]
    return box.get("result")


def run_async(mgr, coro_fn, *args):
    return run_peer(mgr, lambda: asyncio.run(coro_fn(*args)))


def raw_open(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    return s


def frame(first_byte, payload, masked=True):
    n = len(payload)
    if n < 126:
        hdr = bytes([first_byte, (0x80 if masked else 0) | n])
    elif n < 65536:
        hdr = bytes([first_byte, (0x80 if masked else 0) | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([first_byte, (0x80 if masked else 0) | 127]) + struct.pack("!Q", n)
    if not masked:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_read_all(sock):
    """Everything until the server closes: the 101, then frames."""
    sock.settimeout(DEADLINE_S)
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def frames_after_101(data):
    """Parses unmasked server frames after the handshake response."""
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = []
    while rest:
        b0, b1 = rest[0], rest[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            n, off = struct.unpack("!H", rest[2:4])[0], 4
        elif n == 127:
            n, off = struct.unpack("!Q", rest[2:10])[0], 10
        frames.append((b0, rest[off:off + n]))
        rest = rest[off + n:]
    return frames


# ------------------------------------------------- our server, their clients

def test_echo_websocket_client(server):
    def peer():
        ws = websocket.create_connection(server.url)
        out = []
        for n in SIZES:
            data = os.urandom(n)
            ws.send_binary(data)
            out.append(ws.recv() == data)
        ws.send("héllo wörld")
        out.append(ws.recv())
        ws.close()
        return out

    res = run_peer(server.mgr, peer)
    assert res == [True] * len(SIZES) + ["héllo wörld"]
    assert [e[2] for e in server.msgs()] == [0x82] * len(SIZES) + [0x81]


@pytest.mark.parametrize("compress", [False, True])
def test_echo_websockets(compress):
    server = EchoServer({"compress": compress})
    try:
        async def peer():
            async with websockets.connect(server.url, max_size=None,
                                          compression="deflate" if compress else None) as ws:
                agreed = [type(e).__name__ for e in ws.extensions]
                ok = []
                for n in SIZES:
                    data = os.urandom(n // 2) * 2
                    await ws.send(data)
                    ok.append(await ws.recv() == data)
                for _ in range(3):  # context takeover across messages
                    await ws.send("compress me " * 100)
                    ok.append(await ws.recv() == "compress me " * 100)
                return agreed, ok

        agreed, ok = run_async(server.mgr, peer)
        assert all(ok)
        assert agreed == (["PerMessageDeflate"] if compress else [])
    finally:
        server.close()


def test_fragmented_message_with_ping_between(server):
    def peer():
        s = raw_open(server.port)
        s.sendall(frame(0x01, "frag".encode() + b"\xc3")   # "é" split across frames
                  + frame(0x89, b"ping!")
                  + frame(0x00, b"\xa9-")
                  + frame(0x80, b"end")
                  + frame(0x88, struct.pack("!H", 1000)))
        return frames_after_101(raw_read_all(s))

    frames = run_peer(server.mgr, peer)
    assert frames == [(0x8A, b"ping!"), (0x81, "fragé-end".encode()),
                      (0x88, struct.pack("!H", 1000))]
    assert server.msgs()[0][1:4] == (cm.WEBSOCKET_OP_TEXT, 0x81, "fragé-end".encode())
    ctl = server.ctls()
    assert ctl[0][1:4] == (cm.WEBSOCKET_OP_PING, 0x89, b"ping!")
    assert ctl[1][1] == cm.WEBSOCKET_OP_CLOSE and ctl[1][4] == 1000


def test_ping_answered_with_pong(server):
    def peer():
        ws = websocket.create_connection(server.url)
        ws.ping(b"are you there")
        op, fr = ws.recv_data_frame(True)
        ws.close()
        return op, fr.data

    assert run_peer(server.mgr, peer) == (websocket.ABNF.OPCODE_PONG, b"are you there")
    assert server.ctls()[0][1:4] == (cm.WEBSOCKET_OP_PING, 0x89, b"are you there")


def test_close_code_client_to_server(server):
    async def peer():
        ws = await websockets.connect(server.url)
        await ws.close(code=4001, reason="client bye")
        return ws.close_code

    assert run_async(server.mgr, peer) == 4001  # our echo
    assert poll_until(server.mgr, lambda: len(server.ctls()) == 1)
    assert server.ctls()[0][4:] == (4001, "client bye")
    assert poll_until(server.mgr, lambda: len(server.mgr.connections) == 1)


@pytest.mark.parametrize("how", ["ws_close", "ws_send"])
def test_close_code_server_to_client(how):
    def on_msg(conn, msg):
        if how == "ws_close":
            assert conn.ws_close(4002, "server bye")
        else:
            assert conn.ws_send(struct.pack("!H", 4002) + b"server bye", cm.WEBSOCKET_OP_CLOSE) > 0
        assert conn.ws_send("too late") == 0

    server = EchoServer(on_msg=on_msg)
    try:
        async def peer():
            async with websockets.connect(server.url) as ws:
                await ws.send("close me")
                with pytest.raises(websockets.ConnectionClosed):
                    await ws.recv()
                return ws.close_code, ws.close_reason

        assert run_async(server.mgr, peer) == (4002, "server bye")
        assert poll_until(server.mgr, lambda: len(server.mgr.connections) == 1)
    finally:
        server.close()


@pytest.mark.parametrize("payload,code", [
    (frame(0x81, b"\xff\xfe"), 1007),                          # invalid UTF-8
    (frame(0x01, b"ok\xe2\x82") + frame(0x80, b"x"), 1007),    # invalid across fragments
    (frame(0x81, b"unmasked", masked=False), 1002),            # clients must mask
    (frame(0x83, b"x"), 1002),                                 # reserved opcode
    (frame(0xC1, b"x"), 1002),                                 # RSV1 without deflate
    (frame(0x09, b"x"), 1002),                                 # fragmented control frame
    (frame(0x89, b"x" * 126), 1002),                           # control frame too long
    (frame(0x80, b"x"), 1002),                                 # continuation of nothing
    (frame(0x88, b"\x03"), 1002),                              # 1-byte close payload
    (frame(0x88, struct.pack("!H", 1005)), 1002),              # close code not for the wire
])
def test_bad_frames_close_with_code(server, payload, code):
    def peer():
        s = raw_open(server.port)
        s.sendall(payload)
        return frames_after_101(raw_read_all(s))

    frames = run_peer(server.mgr, peer)
    assert frames[-1][0] == 0x88
    assert struct.unpack("!H", frames[-1][1][:2])[0] == code
    assert server.msgs() == []
    assert poll_until(server.mgr, lambda: len(server.errors) == 1)
    assert "close %d" % code in server.errors[0]


def test_oversize_message_1009():
    server = EchoServer({"max_message_size": 1000})
    try:
        async def peer():
            async with websockets.connect(server.url) as ws:
                await ws.send(b"x" * 1000)
                assert len(await ws.recv()) == 1000
                await ws.send(b"x" * 1001)
                with pytest.raises(websockets.ConnectionClosedError):
                    await ws.recv()
                return ws.close_code

        assert run_async(server.mgr, peer) == 1009
    finally:
        server.close()


def test_default_limit_refuses_over_16_mib(server):
    def peer():
        s = raw_open(server.port)
        # Only the header of a 16 MiB + 1 frame: refused before the payload.
        s.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", 16 * 1024 * 1024 + 1) + b"mask")
        return frames_after_101(raw_read_all(s))

    frames = run_peer(server.mgr, peer)
    assert struct.unpack("!H", frames[-1][1][:2])[0] == 1009


def test_bad_handshake_gets_400_or_426(server):
    def peer(req):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(req)
        s.settimeout(DEADLINE_S)
        data = s.recv(4096)
        s.close()
        return data

    base = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    r = run_peer(server.mgr, peer, base + b"Sec-WebSocket-Version: 12\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13\r\n" in r
    r = run_peer(server.mgr, peer, base.replace(b"websocket", b"h2c") +
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400")
    assert not any(c.is_websocket for c in server.mgr.connections)


def test_subprotocol_and_extra_headers():
    for extra in ({"Sec-WebSocket-Protocol": "chat", "X-Extra": "1"},
                  [("Sec-WebSocket-Protocol", "chat"), ("X-Extra", "1")],
                  "Sec-WebSocket-Protocol: chat\r\nX-Extra: 1\r\n"):
        server = EchoServer({"extra_headers": extra})
        try:
            async def peer():
                async with websockets.connect(server.url, subprotocols=["chat"]) as ws:
                    return ws.subprotocol, ws.response_headers.get("X-Extra")

            assert run_async(server.mgr, peer) == ("chat", "1")
        finally:
            server.close()


def test_ws_upgrade_argument_errors(server):
    seen = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            for bad in ({"X": "a\r\nInjected: 1"}, "X: a\r\n\r\nY: b", [("only-name",)]):
                with pytest.raises((ValueError, TypeError)):
                    conn.ws_upgrade(data, bad)
            seen.append(conn.ws_upgrade(data))
            seen.append(data)
        elif ev == cm.MG_EV_WS_MSG:
            seen.append(data)
            with pytest.raises(ValueError):
                conn.ws_send(b"x" * 126, cm.WEBSOCKET_OP_PING)
            with pytest.raises(ValueError):
                conn.ws_send(b"x", 3)
            with pytest.raises(ValueError):
                conn.ws_close(1006)
            conn.ws_send(data.data, cm.WEBSOCKET_OP_BINARY)

    server.listener.set_handler(handler)

    def peer():
        ws = websocket.create_connection(server.url)
        ws.send("abc")
        r = ws.recv()
        ws.close()
        return r

    assert run_peer(server.mgr, peer) == b"abc"
    assert seen[0] is True
    http_msg, ws_msg = seen[1], seen[2]
    # Views are cut loose after the handler.
    assert not ws_msg and ws_msg.data == b"" and ws_msg.op == 0 and ws_msg.flags == 0
    assert not http_msg
    with pytest.raises(ValueError):
        server.listener.ws_upgrade(http_msg)


def test_1000_connections_broadcast():
    count = 1000

    def on_msg(conn, msg):
        for c in conn_mgr[0].connections:
            if c.is_websocket:
                c.ws_send(msg.data, msg.op)

    server = EchoServer(on_msg=on_msg)
    conn_mgr = [server.mgr]
    try:
        async def peer():
            sem = asyncio.Semaphore(100)

            async def one():
                async with sem:
                    return await websockets.connect(server.url)

            conns = await asyncio.gather(*[one() for _ in range(count)])
            await conns[0].send("to everyone")
            got = await asyncio.gather(*[asyncio.wait_for(c.recv(), 30) for c in conns])
            await asyncio.gather(*[c.close() for c in conns])
            return got

        got = run_async(server.mgr, peer)
        assert got == ["to everyone"] * count
        assert poll_until(server.mgr, lambda: len(server.mgr.connections) == 1)
    finally:
        server.close()


@pytest.mark.skipif(not HAVE_NODE, reason="node ws not installed")
def test_node_ws_client(server):
    script = """
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1]);
const sizes = [0, 125, 126, 65535, 65536, 16 * 1024 * 1024];
let i = 0;
ws.on('open', () => ws.send(Buffer.alloc(sizes[0], 7)));
ws.on('message', (data) => {
  if (data.length !== sizes[i]) { console.log('bad length ' + data.length); process.exit(1); }
  if (++i < sizes.length) ws.send(Buffer.alloc(sizes[i], 7));
  else ws.close(4003, 'node bye');
});
ws.on('close', (code) => { console.log('closed ' + code); process.exit(0); });
ws.on('error', (e) => { console.log('error ' + e); process.exit(1); });
"""

    def peer():
        return subprocess.run(["node", "-e", script, server.url], env=NODE_ENV,
                              capture_output=True, text=True, timeout=60)

    r = run_peer(server.mgr, peer)
    assert r.returncode == 0 and r.stdout.strip() == "closed 4003", r.stdout + r.stderr
    assert server.ctls()[-1][4:] == (4003, "node bye")


# -------------------------------------------------- our client, their servers

class OurClient:
    def __init__(self):
        self.events = []

    def __call__(self, conn, ev, data):
        if ev == cm.MG_EV_WS_OPEN:
            self.events.append(("open", data.status()))
        elif ev == cm.MG_EV_WS_MSG:
            self.events.append(("msg", data.op, data.data))
        elif ev == cm.MG_EV_WS_CTL:
            self.events.append(("ctl", data.op, data.data, data.close_code, data.close_reason))
        elif ev == cm.MG_EV_ERROR:
            self.events.append(("error", data))
        elif ev == cm.MG_EV_CLOSE:
            self.events.append(("close",))

    def of(self, kind):
        return [e for e in self.events if e[0] == kind]


class PeerServer:
    """A websockets echo server in its own thread and loop."""

    def __init__(self, compression=None, subprotocols=None, close_with=None):
        self.ready = threading.Event()
        self.seen = []
        self.compression = compression
        self.subprotocols = subprotocols
        self.close_with = close_with
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(DEADLINE_S)

    async def echo(self, ws, path=None):
        self.seen.append((ws.subprotocol, [type(e).__name__ for e in ws.extensions]))
        try:
            async for msg in ws:
                if self.close_with is not None:
                    await ws.close(*self.close_with)
                    return
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        self.seen.append(("closed", ws.close_code, ws.close_reason))

    async def main(self):
        self.loop = asyncio.get_running_loop()
        self.stop = self.loop.create_future()
        async with websockets.serve(self.echo, "127.0.0.1", 0, max_size=None,
                                    compression=self.compression,
                                    subprotocols=self.subprotocols) as srv:
            self.port = srv.sockets[0].getsockname()[1]
            self.ready.set()
            await self.stop

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(DEADLINE_S)


@pytest.mark.parametrize("compress", [False, True])
def test_our_client_with_websockets_server(compress):
    peer = PeerServer(compression="deflate" if compress else None)
    client = OurClient()
    try:
        with cm.Manager() as mgr:
            conn = mgr.ws_connect("ws://127.0.0.1:%d/path?q=1" % peer.port, client,
                                  compress=compress)
            assert poll_until(mgr, lambda: client.of("open"))
            assert client.of("open") == [("open", 101)]
            assert conn.is_websocket
            for n in SIZES:
                data = os.urandom(n // 2) * 2
                conn.ws_send(data, cm.WEBSOCKET_OP_BINARY)
                assert poll_until(mgr, lambda: len(client.of("msg")) == 1)
                assert client.events.pop()[1:] == (cm.WEBSOCKET_OP_BINARY, data)
            conn.ws_send("text ✓")
            assert poll_until(mgr, lambda: client.of("msg"))
            assert client.of("msg") == [("msg", cm.WEBSOCKET_OP_TEXT, "text ✓".encode())]
            conn.ws_send(b"pingdata", cm.WEBSOCKET_OP_PING)
            assert poll_until(mgr, lambda: client.of("ctl"))
            assert client.of("ctl")[0][1:3] == (cm.WEBSOCKET_OP_PONG, b"pingdata")
            assert conn.ws_close(4005, "client done")
            assert poll_until(mgr, lambda: client.of("close"))
            assert client.of("ctl")[-1][3:] == (4005, "client done")
            assert not client.of("error")
        assert peer.seen[0] == (None, ["PerMessageDeflate"] if compress else [])
        assert poll_until_true(lambda: len(peer.seen) == 2)
        assert peer.seen[1] == ("closed", 4005, "client done")
    finally:
        peer.close()


def poll_until_true(cond):
    import time
    end = time.monotonic() + DEADLINE_S
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


def test_our_client_gets_server_close_and_subprotocol():
    peer = PeerServer(subprotocols=["chat"], close_with=(4006, "server done"))
    client = OurClient()
    try:
        with cm.Manager() as mgr:
            conn = mgr.ws_connect("ws://127.0.0.1:%d/" % peer.port, client,
                                  extra_headers={"Sec-WebSocket-Protocol": "chat"})
            assert poll_until(mgr, lambda: client.of("open"))
            conn.ws_send("bye please")
            assert poll_until(mgr, lambda: client.of("close"))
            ctl = client.of("ctl")
            assert ctl[-1][1] == cm.WEBSOCKET_OP_CLOSE and ctl[-1][3:] == (4006, "server done")
        assert peer.seen[0][0] == "chat"
    finally:
        peer.close()


def test_our_client_handshake_failure():
    # A plain HTTP server answering 404: ERROR, then CLOSE, no WS_OPEN.
    client = OurClient()
    with cm.Manager() as mgr:
        def http_handler(conn, ev, data):
            if ev == cm.MG_EV_HTTP_MSG:
                conn.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

        lst = mgr.listen("http://127.0.0.1:0", http_handler)
        mgr.ws_connect("ws://127.0.0.1:%d/" % lst.local_addr[1], client)
        assert poll_until(mgr, lambda: client.of("close"))
        assert not client.of("open")
        assert "404" in client.of("error")[0][1]
    with pytest.raises(ValueError):
        with cm.Manager() as mgr:
            mgr.ws_connect("ws://127.0.0.1:1/", client, extra_headers="Bad header")
    with pytest.raises(RuntimeError):
        with cm.Manager() as mgr:
            mgr.ws_connect("ws://127.0.0.1:1/a b", client)
    with pytest.raises(ValueError):
        with cm.Manager() as mgr:
            mgr.ws_connect("ws://127.0.0.1:1/", client, extra_headers={"X": "a\nb"})


@pytest.mark.skipif(not HAVE_NODE, reason="node ws not installed")
def test_our_client_with_node_ws_server():
    script = """
const WebSocket = require('ws');
const wss = new WebSocket.Server({host: '127.0.0.1', port: 0, perMessageDeflate: true,
                                  maxPayload: 64 * 1024 * 1024});
wss.on('listening', () => console.log('port ' + wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, {binary: isBinary}));
  ws.on('close', (code, reason) => { console.log('closed ' + code + ' ' + reason); process.exit(0); });
});
"""
    proc = subprocess.Popen(["node", "-e", script], env=NODE_ENV, stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().split()[1])
        client = OurClient()
        with cm.Manager() as mgr:
            conn = mgr.ws_connect("ws://127.0.0.1:%d/" % port, client, compress=True)
            assert poll_until(mgr, lambda: client.of("open"))
            for n in SIZES:
                data = bytes(range(256)) * (n // 256) + b"z" * (n % 256)
                conn.ws_send(data, cm.WEBSOCKET_OP_BINARY)
                assert poll_until(mgr, lambda: len(client.of("msg")) == 1)
                assert client.events.pop()[1:] == (cm.WEBSOCKET_OP_BINARY, data)
            conn.ws_close(4007, "to node")
            assert poll_until(mgr, lambda: client.of("close"))
        assert proc.wait(DEADLINE_S) == 0
        assert proc.stdout.read().strip() == "closed 4007 to node"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------- random input

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FIRST_BYTES = [0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89, 0x8A, 0xC1, 0xC2, 0x41, 0x83, 0x8B]
frames_strategy = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIRST_BYTES), st.integers(0, 255)),
              st.binary(max_size=300), st.booleans()),
    max_size=6)


@pytest.fixture(scope="module")
def fuzz_server():
    s = EchoServer({"compress": True, "max_message_size": 512})
    yield s
    s.close()


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(frames=frames_strategy, tail=st.binary(max_size=40), deflate=st.booleans())
def test_random_frames_never_hang_or_crash(fuzz_server, frames, tail, deflate):
    server = fuzz_server
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
              (b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b"") + b"\r\n")
    try:
        s.sendall(b"".join(frame(b0, p, masked=m or b0 % 3 != 0) for b0, p, m in frames) + tail)
        s.shutdown(socket.SHUT_WR)  # then the server must end the connection
    except OSError:
        pass  # the server already closed: fine
    s.setblocking(False)
    done = []

    def drained():
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    done.append(True)
                    return True
        except BlockingIOError:
            return False
        except OSError:
            done.append(True)
            return True

    assert poll_until(server.mgr, drained), "the server never closed"
    s.close()
    assert poll_until(server.mgr, lambda: len(server.mgr.connections) == 1)


# -------------------------------------------------------------------- wss

def test_wss_our_server_with_websockets_and_our_client(tmp_path):
    import ssl
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(tmp_path), "-i", "127.0.0.1"],
                   check=True, capture_output=True)
    cert, key, ca = [(tmp_path / n).read_text() for n in ("server.pem", "server.key", "client.pem")]
    server = EchoServer({"compress": True})
    server.listener.tls_init(cm.TlsOpts(cert=cert, key=key))
    url = "wss://127.0.0.1:%d/ws" % server.port
    try:
        async def peer():
            ctx = ssl.create_default_context(cafile=str(tmp_path / "client.pem"))
            async with websockets.connect(url, ssl=ctx, max_size=None) as ws:
                data = os.urandom(300000)
                await ws.send(data)
                ok = await ws.recv() == data
                await ws.close(4010, "tls bye")
                return ok, ws.close_code

        assert run_async(server.mgr, peer) == (True, 4010)
        client = OurClient()
        conn = server.mgr.ws_connect(url, client, compress=True)
        conn.tls_init(cm.TlsOpts(ca=ca))
        assert poll_until(server.mgr, lambda: client.of("open"))
        assert conn.is_tls
        conn.ws_send(b"over tls" * 1000, cm.WEBSOCKET_OP_BINARY)
        assert poll_until(server.mgr, lambda: client.of("msg"))
        assert client.of("msg") == [("msg", cm.WEBSOCKET_OP_BINARY, b"over tls" * 1000)]
        conn.ws_close(1000, "done")
        assert poll_until(server.mgr, lambda: client.of("close"))
        assert not client.of("error")
        assert poll_until(server.mgr, lambda: len(server.mgr.connections) == 1)
    finally:
        server.close()


def test_wss_server_close_half_closes(tmp_path):
    """After the close handshake the server half-closes under TLS too: its
    close frame, close_notify, then the TCP FIN, while it still reads (a
    clean end of stream for the client, whose connection the server closes
    only once the client has closed its side)."""
    import ssl
    subprocess.run(["/usr/bin/python3", "-m", "trustme", "-d", str(tmp_path), "-i", "127.0.0.1"],
                   check=True, capture_output=True)
    cert, key = [(tmp_path / n).read_text() for n in ("server.pem", "server.key")]
    server = EchoServer()
    server.listener.tls_init(cm.TlsOpts(cert=cert, key=key))
    got_eof, may_close = threading.Event(), threading.Event()
    try:
        def peer():
            ctx = ssl.create_default_context(cafile=str(tmp_path / "client.pem"))
            raw = socket.create_connection(("127.0.0.1", server.port))
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
            s.sendall(frame(0x88, struct.pack("!H", 1000) + b"bye"))
            out = b""
            while True:
                chunk = s.recv(65536)  # raises SSLEOFError on a FIN without close_notify
                if not chunk:
                    break
                out += chunk
            got_eof.set()
            may_close.wait(DEADLINE_S)
            raw = s.unwrap()
            tail = raw.recv(100)  # the FIN came after close_notify
            raw.close()
            return out, tail

        box = {}

        def target():
            try:
                box["result"] = peer()
            except BaseException as e:
                box["error"] = e
        t = threading.Thread(target=target, daemon=True)
        t.start()
        assert poll_until(server.mgr, lambda: got_eof.is_set() or not t.is_alive())
        assert "error" not in box, box.get("error")
        children = [c for c in server.mgr.connections if not c.is_listening]
        assert len(children) == 1  # the server's side is still open, reading
        may_close.set()
        assert poll_until(server.mgr, lambda: not t.is_alive() and
                          len(server.mgr.connections) == 1)
        assert "error" not in box, box.get("error")
        out, tail = box["result"]
        frames = frames_after_101(out)
        assert frames[-1][0] == 0x88 and frames[-1][1][:2] == struct.pack("!H", 1000)
        assert tail == b""
        assert not server.errors
    finally:
        server.close()


# ------------------------------------------------------------------ leaks

def c_heap_in_use():
    """Bytes malloc()ed and not freed (glibc), C allocations included."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                     "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_ws_churn_leaves_nothing_behind():
    import gc
    import sys

    state = {"opened": 0, "closed": 0, "msgs": 0}

    def srv(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            conn.ws_upgrade(data, {"X-Srv": "1"}, compress=True)
        elif ev == cm.MG_EV_WS_MSG:
            conn.ws_send(data.data, data.op)

    def cli(conn, ev, data):
        if ev == cm.MG_EV_WS_OPEN:
            state["opened"] += 1
            conn.ws_send("hello " * 50)
        elif ev == cm.MG_EV_WS_MSG:
            state["msgs"] += 1
            conn.ws_close(1000, "bye")
        elif ev == cm.MG_EV_CLOSE:
            state["closed"] += 1

    mgr = cm.Manager()
    url = "ws://127.0.0.1:%d/" % mgr.listen("http://127.0.0.1:0", srv).local_addr[1]

    def churn(n, batch=50):
        for _ in range(n // batch):
            target = state["closed"] + batch
            for _ in range(batch):
                mgr.ws_connect(url, cli, compress=True)
            assert poll_until(mgr, lambda: state["closed"] == target and
                              len(mgr.connections) == 1)

    churn(100)  # warm-up
    gc.collect()
    refs, fds, heap = sys.getrefcount(cli), open_fds(), c_heap_in_use()
    churn(500)
    gc.collect()
    assert state["msgs"] == state["opened"] == 600
    assert sys.getrefcount(cli) == refs
    assert open_fds() == fds
    assert c_heap_in_use() - heap < 1024 * 1024
    mgr.close()
