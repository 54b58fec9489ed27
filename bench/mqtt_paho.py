"""The load of bench/mqtt_ours.py on python3-paho-mqtt (the peer): the same
single connection, window and loop, driven by paho's own loop_forever().
Usage: mqtt_paho.py PORT QOS WINDOW SECONDS [MODE]"""
import paho.mqtt.client as paho

from mqtt_window import WindowLoad

load = WindowLoad("bench/paho")


def publish(topic, payload, qos):
    return client.publish(topic, payload, qos).mid


def on_connect(client, userdata, flags, rc):
    if load.mode == "pub":
        load.started(publish)
    else:
        client.subscribe(load.topic, load.qos)


def on_subscribe(client, userdata, mid, granted):
    load.started(publish)


def on_message(client, userdata, msg):
    load.received_one(publish, client.disconnect)


def on_publish(client, userdata, mid):
    if load.mode == "pub":
        load.acked(publish, client.disconnect, mid)


client = paho.Client(client_id="bench-paho", protocol=paho.MQTTv311)
client.max_queued_messages_set(0)
client.max_inflight_messages_set(load.library_window)
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.on_publish = on_publish
client.connect("127.0.0.1", load.port, 60)
client.loop_forever()
load.report()
