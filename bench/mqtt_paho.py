"""The load of bench/mqtt_ours.py on python3-paho-mqtt (the peer): the same
single connection, window and loop, driven by paho's own loop_forever().
Usage: mqtt_paho.py PORT QOS WINDOW SECONDS"""
import resource
import sys
import time

import paho.mqtt.client as paho

port, qos, window, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
TOPIC, PAYLOAD = "bench/paho", b"x" * 64
state = {"sent": 0, "received": 0, "t0": 0.0, "cpu0": 0.0, "deadline": 0.0, "done": False}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def on_connect(client, userdata, flags, rc):
    client.subscribe(TOPIC, qos)


def on_subscribe(client, userdata, mid, granted):
    state["t0"], state["cpu0"] = time.monotonic(), cpu()
    state["deadline"] = state["t0"] + seconds
    for _ in range(window):
        client.publish(TOPIC, PAYLOAD, qos)
    state["sent"] = window


def on_message(client, userdata, msg):
    state["received"] += 1
    if time.monotonic() < state["deadline"]:
        client.publish(TOPIC, PAYLOAD, qos)
        state["sent"] += 1
    elif state["received"] == state["sent"]:
        state["t1"], state["cpu1"] = time.monotonic(), cpu()
        state["done"] = True
        client.disconnect()


client = paho.Client(client_id="bench-paho", protocol=paho.MQTTv311)
client.max_queued_messages_set(0)
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect("127.0.0.1", port, 60)
client.loop_forever()
print("messages=%d seconds=%.4f cpu=%.4f" % (state["received"], state["t1"] - state["t0"],
                                            state["cpu1"] - state["cpu0"]))
