"""MQTT client load for bench.py, on cymongoose: one connection, 64-byte
messages, WINDOW in flight for SECONDS, then prints messages, seconds and
process CPU seconds (modes echo and pub: bench/mqtt_window.py).
Usage: mqtt_ours.py PORT QOS WINDOW SECONDS [MODE]   (bench/mqtt_paho.py is
the same on paho)"""
import sys

import cymongoose as cm
from mqtt_window import WindowLoad

load = WindowLoad("bench/ours")
PUBACK, SUBACK = 4, 9


def handler(conn, ev, data):
    if ev == cm.MG_EV_MQTT_OPEN:
        if load.mode == "pub":
            load.started(conn.mqtt_pub)
        else:
            conn.mqtt_sub(load.topic, load.qos)
    elif ev == cm.MG_EV_MQTT_CMD:
        cmd = data.cmd
        if cmd == PUBACK:
            if load.mode == "pub":
                load.acked(conn.mqtt_pub, conn.mqtt_disconnect, data.id)
        elif cmd == SUBACK:
            load.started(conn.mqtt_pub)
    elif ev == cm.MG_EV_MQTT_MSG:
        load.received_one(conn.mqtt_pub, conn.mqtt_disconnect)
    elif ev == cm.MG_EV_ERROR:
        sys.exit("error: " + data)


mgr = cm.Manager()
mgr.mqtt_connect("mqtt://127.0.0.1:%d" % load.port, handler, client_id="bench-ours", keepalive=60,
                 max_inflight=load.library_window)
while not load.done:
    mgr.poll(100)
mgr.close()
load.report()
