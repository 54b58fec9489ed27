"""AsyncManager: the manager driven by the running asyncio loop."""
import asyncio
import threading

import pytest

import cymongoose as cm
from cymongoose import AsyncManager

# Long enough that only the descriptor reader and the output hook can make
# these tests pass before their (generous) deadlines: the periodic tick
# would come too late.
SLOW_TICK_MS = 60000
DEADLINE_S = 20


async def http_get(port, path="/"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_http_server_served_by_the_asyncio_loop():
    seen_thread = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_HTTP_MSG:
            seen_thread.append(threading.get_ident())
            conn.reply(200, "async " + data.uri)

    async with AsyncManager(handler, poll_interval=SLOW_TICK_MS) as amgr:
        assert amgr.running
        port = amgr.listen("http://127.0.0.1:0").local_addr[1]
        got = await asyncio.wait_for(http_get(port, "/a"), DEADLINE_S)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"async /a")
    assert seen_thread == [threading.get_ident()]
    assert not amgr.running
    with pytest.raises(RuntimeError, match="not started"):
        amgr.manager


async def test_output_queued_by_a_coroutine_leaves_without_waiting_for_a_tick():
    conns = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_ACCEPT:
            conns.append(conn)

    async with AsyncManager(handler, poll_interval=SLOW_TICK_MS) as amgr:
        port = amgr.listen("tcp://127.0.0.1:0").local_addr[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not conns:
            await asyncio.sleep(0.01)
        conns[0].send(b"pushed from a coroutine")
        got = await asyncio.wait_for(reader.readexactly(23), DEADLINE_S)
        assert got == b"pushed from a coroutine"
        writer.close()


async def test_timers_schedule_and_errors():
    fired, errors = [], []

    async def job():
        await asyncio.sleep(0.01)
        return "done"

    async def failing():
        raise ValueError("from a task")

    async with AsyncManager(None, poll_interval=10, error_handler=errors.append) as amgr:
        amgr.timer_add(1, lambda: fired.append(1))
        task = amgr.schedule(job())
        amgr.schedule(failing())
        amgr.schedule(lambda: fired.append("call"))
        with pytest.raises(TypeError):
            amgr.schedule(42)
        while len(fired) < 2:
            await asyncio.sleep(0.01)
    assert task.result() == "done"
    assert sorted(map(str, fired)) == ["1", "call"]
    assert [str(e) for e in errors] == ["from a task"]


async def test_wakeup_from_a_thread():
    got = []

    def handler(conn, ev, data):
        if ev == cm.MG_EV_WAKEUP:
            got.append(data)

    async with AsyncManager(handler, poll_interval=SLOW_TICK_MS) as amgr:
        conn = amgr.listen("udp://127.0.0.1:0")
        t = threading.Thread(target=lambda: amgr.wakeup(conn.id, b"x" * 100000))
        t.start()
        t.join()
        for _ in range(DEADLINE_S * 100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"x" * 100000]
    with pytest.raises(RuntimeError, match="not started"):
        amgr.wakeup(1, b"")


async def test_methods_outside_the_context_raise():
    amgr = AsyncManager(None)
    with pytest.raises(RuntimeError):
        amgr.listen("tcp://127.0.0.1:0")
    with pytest.raises(ValueError):
        AsyncManager(None, poll_interval=0)
