"""The HTTP test server test_http.py and test_http_edges.py share: a
Manager with an HTTP listener on 127.0.0.1 whose blocking clients
(requests, http.client, raw sockets) run in a thread while the test thread
polls."""
import concurrent.futures
import socket

import cymongoose as cm
from core_helpers import DEADLINE_S, poll_until


class HttpServer:
    """An HTTP listener with handler; run() waits up to timeout seconds for
    each client call."""

    def __init__(self, handler, timeout=DEADLINE_S, **listen_options):
        self.mgr = cm.Manager(handler)
        self.listener = self.mgr.listen("http://127.0.0.1:0", **listen_options)
        self.port = self.listener.local_addr[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.timeout = timeout
        self.pool = concurrent.futures.ThreadPoolExecutor(1)

    def run(self, fn, *args, **kwargs):
        fut = self.pool.submit(fn, *args, **kwargs)
        assert poll_until(self.mgr, fut.done, timeout=self.timeout)
        return fut.result()

    def raw(self, payload):
        """Sends payload as is, returns everything until the server closes."""
        def go():
            with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
                s.sendall(payload)
                out = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return out
                    out += chunk
        return self.run(go)

    def close(self):
        self.pool.shutdown()
        self.mgr.close()
