"""The load of bench/mqtt_ours.py on python3-paho-mqtt (the peer): the same
single connection, window and loop, driven by paho's own loop_forever().
Usage: mqtt_paho.py PORT QOS WINDOW SECONDS"""
import paho.mqtt.client as paho

from mqtt_window import WindowLoad

load = WindowLoad("bench/paho")


def on_connect(client, userdata, flags, rc):
    client.subscribe(load.topic, load.qos)


def on_subscribe(client, userdata, mid, granted):
    load.started(client.publish)


def on_message(client, userdata, msg):
    load.received_one(client.publish, client.disconnect)


client = paho.Client(client_id="bench-paho", protocol=paho.MQTTv311)
client.max_queued_messages_set(0)
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect("127.0.0.1", load.port, 60)
client.loop_forever()
load.report()
