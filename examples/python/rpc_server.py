"""JSON-RPC 2.0 over HTTP and WebSocket in a few lines.

    python3 rpc_server.py [http://127.0.0.1:8000]

    curl -s -d '{"jsonrpc":"2.0","id":1,"method":"sum","params":[1,2,3]}' \
         http://127.0.0.1:8000/rpc
    # -> {"jsonrpc":"2.0","id":1,"result":6}

WebSocket clients connect to ws://127.0.0.1:8000/ws and send one JSON-RPC
frame (request, notification or batch) per text message; each response
comes back as one text message.
"""
import json
import sys

import cymongoose as cm


def make_rpc():
    """An Rpc with a few demo methods."""
    rpc = cm.Rpc()

    def sum_(req):
        params = json.loads(req.params or "[]")
        if not isinstance(params, list) or not all(isinstance(x, (int, float)) for x in params):
            req.err(-32602, "params must be a list of numbers")
            return
        req.ok(json.dumps(sum(params)))

    def echo(req):
        req.ok(req.params or "null")

    def time_ms(req):
        req.ok(str(cm.millis()))

    rpc.add("sum", sum_)
    rpc.add("echo", echo)
    rpc.add("time.ms", time_ms)
    return rpc


def rpc_handler(rpc, http_path="/rpc", ws_path="/ws"):
    """An event handler serving rpc: POST http_path, WebSocket at ws_path."""

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            if data.uri == ws_path:
                conn.ws_upgrade(data)
            elif data.uri == http_path and data.method == "POST":
                response = rpc.process(data.body_bytes)
                if response:
                    conn.reply(200, response, headers={"Content-Type": "application/json"})
                else:  # only notifications: nothing to say
                    conn.reply(204)
            else:
                conn.reply(404, "POST JSON-RPC to %s, or open a WebSocket at %s\n"
                           % (http_path, ws_path))
        elif ev == cm.MG_EV_WS_MSG:
            response = rpc.process(data.data)
            if response:
                conn.ws_send(response)

    return handler


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    with cm.Manager(rpc_handler(make_rpc())) as manager:
        manager.listen(url)
        print("JSON-RPC on %s/rpc and %s/ws" % (url, url.replace("http", "ws", 1)))
        manager.run()


if __name__ == "__main__":
    main()
