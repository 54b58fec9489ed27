"""JSON-RPC 2.0: Rpc and RpcReq, then the example served over HTTP and WebSocket."""
import gc
import importlib.util
import json
import os
import sys
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cymongoose as cm


def call(rpc, frame):
    resp = rpc.process(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return json.loads(resp) if resp else None


@pytest.fixture
def rpc():
    r = cm.Rpc()

    def echo(req):
        req.ok(cm.json_get(req.frame, "$.params") or "null")

    def greet(req):
        req.ok(json.dumps("hello %s" % cm.json_get_str(req.frame, "$.params[0]")))

    def add(req):
        a = cm.json_get_num(req.frame, "$.params[0]")
        b = cm.json_get_num(req.frame, "$.params[1]")
        req.ok(str(a + b))

    r.add("echo", echo)
    r.add("greet", greet)
    r.add("add", add)
    return r


def test_results(rpc):
    assert call(rpc, '{"id":1,"method":"echo","params":[1,2,3]}') == {
        "jsonrpc": "2.0", "id": 1, "result": [1, 2, 3]}
    assert call(rpc, {"id": 1, "method": "greet", "params": ["world"]})["result"] == "hello world"
    assert call(rpc, {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [3, 4]})["result"] == 7
    assert call(rpc, b'{"id":2,"method":"echo","params":{"a":"\\u00e9"}}')["result"] == {"a": "\u00e9"}


@pytest.mark.parametrize("ident", [1, -5, 2.5, "abc", "", None, [1, "x"], {"k": {"n": None}}, True])
def test_ids_of_any_type_are_echoed(rpc, ident):
    assert call(rpc, {"id": ident, "method": "echo"})["id"] == ident
    assert call(rpc, {"id": ident, "method": "nope"})["id"] == ident


def test_errors(rpc):
    def fail(req):
        req.err(-32000, "something broke")

    def boom(req):
        raise ValueError("bad value")

    def silent(req):
        pass

    rpc.add("fail", fail)
    rpc.add("boom", boom)
    rpc.add("silent", silent)
    err = call(rpc, {"id": 1, "method": "fail"})["error"]
    assert err == {"code": -32000, "message": "something broke"}
    err = call(rpc, {"id": 1, "method": "boom"})["error"]
    assert err["code"] == -32603 and "bad value" in err["message"]
    assert call(rpc, {"id": 1, "method": "silent"})["error"]["code"] == -32603
    assert call(rpc, {"id": 1, "method": "nonexistent"})["error"]["code"] == -32601
    r = call(rpc, '{"id":1,"method":')
    assert r["error"]["code"] == -32700 and r["id"] is None
    assert call(rpc, "")["error"]["code"] == -32700
    assert call(rpc, "[1,2")["error"]["code"] == -32700
    for bad in ('{"id":1,"method":5}', '{"id":1}', '"x"', "7", "[]",
                '{"jsonrpc":"1.0","id":1,"method":"echo"}'):
        assert call(rpc, bad)["error"]["code"] == -32600, bad


def test_error_message_escaping(rpc):
    def quirky(req):
        req.err(7, 'quote " backslash \\ newline \n tab \t nul-free \u00e9')

    rpc.add("quirky", quirky)
    err = call(rpc, {"id": 1, "method": "quirky"})["error"]
    assert err["message"] == 'quote " backslash \\ newline \n tab \t nul-free \u00e9'
    raised = []

    def big(req):
        try:
            req.err(2 ** 40, "x")
        except OverflowError:
            raised.append(True)
            req.err(1, "ok")

    rpc.add("big", big)
    assert call(rpc, {"id": 1, "method": "big"})["error"]["code"] == 1
    assert raised == [True]


def test_notifications(rpc):
    called = []

    def notify(req):
        called.append(req.is_notification)
        req.ok("null")

    rpc.add("notify", notify)
    assert rpc.process('{"method":"notify"}') == ""
    assert rpc.process('{"jsonrpc":"2.0","method":"nonexistent"}') == ""
    assert called == [True]
    rpc.add("boom", lambda req: 1 / 0)
    assert rpc.process('{"method":"boom"}') == ""


def test_batches(rpc):
    frame = json.dumps([
        {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]},
        {"jsonrpc": "2.0", "method": "echo"},
        5,
        {"jsonrpc": "2.0", "id": "x", "method": "nope"},
    ])
    resp = call(rpc, frame)
    assert [r.get("result") for r in resp] == [3, None, None]
    assert [r["id"] for r in resp] == [1, None, "x"]
    assert [r.get("error", {}).get("code") for r in resp] == [None, -32600, -32601]
    assert rpc.process('[{"method":"echo"},{"method":"echo"}]') == ""


def test_methods_and_patterns():
    rpc = cm.Rpc()
    assert rpc.methods == []
    rpc.add("add", lambda r: r.ok("1"))
    rpc.add("sub", lambda r: r.ok("2"))
    rpc.add("files.*", lambda r: r.ok(json.dumps(r.method)))
    rpc.add("add", lambda r: r.ok("3"))  # replaces, keeps its place
    assert rpc.methods == ["add", "sub", "files.*"]
    assert call(rpc, {"id": 1, "method": "add"})["result"] == 3
    assert call(rpc, {"id": 1, "method": "files.list"})["result"] == "files.list"
    assert call(rpc, {"id": 1, "method": "files.a/b"})["error"]["code"] == -32601
    with pytest.raises(TypeError):
        rpc.add("x", 5)
    with pytest.raises(TypeError):
        rpc.add(5, lambda r: None)


def test_answering_twice_raises(rpc):
    errors = []

    def twice_ok(req):
        req.ok("1")
        try:
            req.ok("2")
        except RuntimeError as e:
            errors.append(str(e))

    def twice_err(req):
        req.err(-1, "first")
        try:
            req.err(-2, "second")
        except RuntimeError as e:
            errors.append(str(e))

    rpc.add("a", twice_ok)
    rpc.add("b", twice_err)
    assert call(rpc, {"id": 1, "method": "a"})["result"] == 1
    assert call(rpc, {"id": 1, "method": "b"})["error"]["message"] == "first"
    assert len(errors) == 2 and all("already sent" in e for e in errors)


def test_answer_after_raise_keeps_answer(rpc):
    def answer_then_raise(req):
        req.ok('"kept"')
        raise KeyError("ignored")

    rpc.add("x", answer_then_raise)
    assert call(rpc, {"id": 1, "method": "x"})["result"] == "kept"


def test_invalid_result_json(rpc):
    seen = []

    def bad(req):
        try:
            req.ok("not json")
        except ValueError:
            seen.append(True)
        req.ok("[1]")

    rpc.add("bad", bad)
    assert call(rpc, {"id": 1, "method": "bad"})["result"] == [1]
    assert seen == [True]


def test_request_outlives_handler(rpc):
    kept = []

    def keep(req):
        kept.append(req)
        assert req.method == "keep"
        assert json.loads(req.params) == {"a": 1}
        assert req.id == "7"
        assert req.answered is False
        assert req.frame.startswith("{")

    rpc.add("keep", keep)
    frame = '{"id":7,"method":"keep","params":{"a":1}}'
    call(rpc, frame)
    req = kept[0]
    with pytest.raises(RuntimeError):
        req.ok("1")
    with pytest.raises(RuntimeError):
        req.err(1, "x")
    assert req.frame == frame  # cached while it was valid
    assert req.id is None and req.params is None and req.method == ""
    with pytest.raises(TypeError):
        type(req)()


def test_base_exceptions_propagate(rpc):
    def interrupt(req):
        raise KeyboardInterrupt

    calls = []
    rpc.add("int", interrupt)
    rpc.add("count", lambda req: calls.append(1) or req.ok("1"))
    with pytest.raises(KeyboardInterrupt):
        rpc.process('[{"id":1,"method":"int"},{"id":2,"method":"count"}]')
    assert calls == []  # the rest of the batch was not run
    assert call(rpc, {"id": 3, "method": "count"})["result"] == 1  # still usable


def test_handler_may_replace_itself_and_recurse():
    rpc = cm.Rpc()

    def first(req):
        rpc.add("m", lambda r: r.ok('"second"'))
        inner = rpc.process('{"id":9,"method":"m"}')
        req.ok(inner)

    rpc.add("m", first)
    assert call(rpc, {"id": 1, "method": "m"})["result"] == {
        "jsonrpc": "2.0", "id": 9, "result": "second"}
    assert call(rpc, {"id": 1, "method": "m"})["result"] == "second"


def test_concurrent_process_from_threads():
    import time
    rpc = cm.Rpc()

    def slow(req):
        time.sleep(0.001)  # lets the other threads run process() meanwhile
        req.ok(req.params)

    rpc.add("slow", slow)
    failures = []

    def worker(n):
        for i in range(50):
            frame = json.dumps({"id": [n, i], "method": "slow", "params": {"n": n, "i": i}})
            resp = json.loads(rpc.process(frame))
            if resp != {"jsonrpc": "2.0", "id": [n, i], "result": {"n": n, "i": i}}:
                failures.append(resp)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_depth_limit():
    rpc = cm.Rpc(max_depth=4)
    rpc.add("echo", lambda r: r.ok(r.params or "null"))
    assert call(rpc, {"id": 1, "method": "echo", "params": [[1]]})["result"] == [[1]]
    assert call(rpc, {"id": 1, "method": "echo", "params": [[[[1]]]]})["error"]["code"] == -32700
    with pytest.raises(ValueError):
        cm.Rpc(max_depth=0)


def test_cycles_are_collected():
    class Marker:
        deleted = False

        def __del__(self):
            Marker.deleted = True

    def make():
        rpc = cm.Rpc()
        marker = Marker()
        rpc.add("m", lambda req: (rpc, marker))  # rpc -> handler -> rpc
    make()
    gc.collect()
    assert Marker.deleted


def test_no_leaks(rpc):
    def handler(req):
        req.ok(req.params or "null")

    def raiser(req):
        raise ValueError("x")

    rpc.add("h", handler)
    rpc.add("r", raiser)
    before = sys.getrefcount(handler)
    frames = ['{"id":1,"method":"h","params":[1,"a"]}', '{"id":1,"method":"r"}',
              '[{"id":1,"method":"h"},{"method":"h"},{"id":2,"method":"x"}]', '{bad', b'{"id":1}']
    for _ in range(300):
        for f in frames:
            rpc.process(f)
    gc.collect()
    tracemalloc.start()
    try:
        snap1 = tracemalloc.take_snapshot()
        for _ in range(3000):
            for f in frames:
                rpc.process(f)
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert sys.getrefcount(handler) == before
    growth = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert growth < 64 * 1024, growth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8)


@settings(max_examples=150, deadline=None, database=None)
@given(json_values, json_values)
def test_generated_ids_and_params_round_trip(ident, params):
    rpc = cm.Rpc()
    rpc.add("echo", lambda req: req.ok(req.params))
    resp = call(rpc, {"jsonrpc": "2.0", "id": ident, "method": "echo", "params": params})
    assert resp == {"jsonrpc": "2.0", "id": ident, "result": params}


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=60) | st.binary(max_size=60))
def test_garbage_always_gets_valid_json_or_nothing(frame):
    rpc = cm.Rpc()
    rpc.add("#", lambda req: req.ok("1"))
    resp = rpc.process(frame)
    if resp:
        json.loads(resp)


# ------------------------------------------------ served over HTTP and WS
def load_example():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "rpc_server.py")
    spec = importlib.util.spec_from_file_location("rpc_server_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_rpc_object():
    example = load_example()
    rpc = example.make_rpc()
    assert call(rpc, {"jsonrpc": "2.0", "id": 1, "method": "sum", "params": [1, 2, 3]})["result"] == 6
    assert call(rpc, {"id": 1, "method": "sum", "params": ["x"]})["error"]["code"] == -32602


def http_and_ws_available():
    conn = getattr(cm, "Connection", None)
    return hasattr(cm, "Manager") and all(hasattr(conn, m) for m in ("reply", "ws_upgrade", "ws_send"))


@pytest.mark.skipif(not http_and_ws_available(), reason="HTTP/WebSocket bindings not merged yet")
def test_example_served_over_http_and_websocket():
    requests = pytest.importorskip("requests")
    websocket = pytest.importorskip("websocket")
    example = load_example()
    manager = cm.Manager(example.rpc_handler(example.make_rpc()))
    listener = manager.listen("http://127.0.0.1:0")
    port = listener.local_addr[1]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            manager.poll(50)

    t = threading.Thread(target=loop)
    t.start()
    try:
        url = "http://127.0.0.1:%d" % port
        r = requests.post(url + "/rpc", data=json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "sum", "params": [1, 2, 3]}), timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {"jsonrpc": "2.0", "id": 1, "result": 6}
        r = requests.post(url + "/rpc", data='{"jsonrpc":"2.0","method":"sum","params":[1]}',
                          timeout=10)
        assert r.status_code == 204
        ws = websocket.create_connection("ws://127.0.0.1:%d/ws" % port, timeout=10)
        try:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": "w", "method": "echo", "params": {"a": 1}}))
            assert json.loads(ws.recv()) == {"jsonrpc": "2.0", "id": "w", "result": {"a": 1}}
            ws.send('[{"jsonrpc":"2.0","id":1,"method":"nope"}]')
            assert json.loads(ws.recv())[0]["error"]["code"] == -32601
        finally:
            ws.close()
    finally:
        stop.set()
        t.join()
        manager.close()


def test_stub_lists_every_rpc_member():
    import ast
    stub = os.path.join(os.path.dirname(cm._mongoose.__file__), "_mongoose.pyi")
    tree = ast.parse(open(stub).read())
    for cls in ("Rpc", "RpcReq"):
        node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        real = {n for n in dir(getattr(cm, cls)) if not n.startswith("_")}
        assert real - members == set(), cls
