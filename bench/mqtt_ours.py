"""MQTT client load for bench.py, on cymongoose: one connection subscribed to
its own topic keeps `window` messages of 64 bytes in flight through the
broker (publish one more per message received) for `seconds`, then prints
messages, seconds and process CPU seconds.  window 1: round-trip latency.
Usage: mqtt_ours.py PORT QOS WINDOW SECONDS   (bench/mqtt_paho.py is the same on paho;
the shared loop is bench/mqtt_window.py)"""
import sys

import cymongoose as cm
from mqtt_window import WindowLoad

load = WindowLoad("bench/ours")


def handler(conn, ev, data):
    if ev == cm.MG_EV_MQTT_OPEN:
        conn.mqtt_sub(load.topic, load.qos)
    elif ev == cm.MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK: start
        load.started(conn.mqtt_pub)
    elif ev == cm.MG_EV_MQTT_MSG:
        load.received_one(conn.mqtt_pub, conn.mqtt_disconnect)
    elif ev == cm.MG_EV_ERROR:
        sys.exit("error: " + data)


mgr = cm.Manager()
mgr.mqtt_connect("mqtt://127.0.0.1:%d" % load.port, handler, client_id="bench-ours", keepalive=60)
while not load.done:
    mgr.poll(100)
mgr.close()
load.report()
