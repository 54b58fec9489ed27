"""MQTT client load for bench.py, on cymongoose: one connection subscribed to
its own topic keeps `window` messages of 64 bytes in flight through the
broker (publish one more per message received) for `seconds`, then prints
messages, seconds and process CPU seconds.  window 1: round-trip latency.
Usage: mqtt_ours.py PORT QOS WINDOW SECONDS   (bench/mqtt_paho.py is the same on paho)"""
import resource
import sys
import time

import cymongoose as cm

port, qos, window, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
TOPIC, PAYLOAD = "bench/ours", b"x" * 64
state = {"sent": 0, "received": 0, "t0": 0.0, "cpu0": 0.0, "deadline": 0.0, "done": False}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def handler(conn, ev, data):
    if ev == cm.MG_EV_MQTT_OPEN:
        conn.mqtt_sub(TOPIC, qos)
    elif ev == cm.MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK: start
        state["t0"], state["cpu0"] = time.monotonic(), cpu()
        state["deadline"] = state["t0"] + seconds
        for _ in range(window):
            conn.mqtt_pub(TOPIC, PAYLOAD, qos)
        state["sent"] = window
    elif ev == cm.MG_EV_MQTT_MSG:
        state["received"] += 1
        if time.monotonic() < state["deadline"]:
            conn.mqtt_pub(TOPIC, PAYLOAD, qos)
            state["sent"] += 1
        elif state["received"] == state["sent"]:
            state["t1"], state["cpu1"] = time.monotonic(), cpu()
            state["done"] = True
            conn.mqtt_disconnect()
    elif ev == cm.MG_EV_ERROR:
        sys.exit("error: " + data)


mgr = cm.Manager()
mgr.mqtt_connect("mqtt://127.0.0.1:%d" % port, handler, client_id="bench-ours", keepalive=60)
while not state["done"]:
    mgr.poll(100)
mgr.close()
print("messages=%d seconds=%.4f cpu=%.4f" % (state["received"], state["t1"] - state["t0"],
                                            state["cpu1"] - state["cpu0"]))
