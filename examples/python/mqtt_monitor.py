"""A temperature monitor on MQTT: publishes simulated readings every
second, subscribes to all of them, and raises a retained alert (QoS 2) when
one is too hot.  The complete example of docs/mqtt.md.

    python3 mqtt_monitor.py [BROKER_URL] [--count N] [--v5]

BROKER_URL defaults to mqtt://127.0.0.1:1883 (mosquitto's default; also
mqtts://host:8883 or ws://host:port/mqtt).  Stops after N readings
(default: run until Ctrl+C).
"""
import json
import random
import sys

from cymongoose import (MG_EV_CLOSE, MG_EV_ERROR, MG_EV_MQTT_MSG, MG_EV_MQTT_OPEN, Manager)

args = sys.argv[1:]
url = next((a for a in args if "://" in a), "mqtt://127.0.0.1:1883")
count = int(args[args.index("--count") + 1]) if "--count" in args else 0
version = 5 if "--v5" in args else 4
THRESHOLD = 30.0
SENSORS = ["kitchen", "cellar", "attic"]

received = 0
connected = False


def handler(conn, ev, data):
    global received, connected
    if ev == MG_EV_MQTT_OPEN:           # data: the CONNACK code, 0
        connected = True
        print("connected to", url, flush=True)
        conn.mqtt_sub("sensors/+/temperature", qos=1)
        conn.mqtt_sub("alerts/#", qos=2)
    elif ev == MG_EV_MQTT_MSG:          # data: MqttMessage, valid during this call
        if data.topic.startswith("alerts/"):
            print("ALERT", data.topic, data.text, "(retained)" if data.retain else "", flush=True)
            return
        sensor = data.topic.split("/")[1]
        value = float(data.text)
        print("%-8s %5.1f C" % (sensor, value), flush=True)
        if value > THRESHOLD:
            alert = json.dumps({"sensor": sensor, "value": value, "threshold": THRESHOLD})
            props = {"content_type": "application/json"} if version == 5 else None
            conn.mqtt_pub("alerts/" + sensor, alert, qos=2, retain=True, properties=props)
        received += 1
        if count and received >= count:
            conn.mqtt_disconnect()      # a clean goodbye: the broker drops our will
    elif ev == MG_EV_ERROR:
        print("error:", data, file=sys.stderr, flush=True)
    elif ev == MG_EV_CLOSE:
        mgr.close()                     # deferred until poll() returns


def publish_reading():
    if connected and not conn.is_closing:
        sensor = random.choice(SENSORS)
        conn.mqtt_pub("sensors/%s/temperature" % sensor, "%.1f" % random.uniform(15, 35), qos=1)


mgr = Manager()
conn = mgr.mqtt_connect(url, handler, client_id="monitor-%d" % random.randrange(1 << 30),
                        keepalive=30, version=version,
                        will_topic="monitors/status", will_message="monitor died", will_qos=1)
mgr.timer_add(1000 if not count else 50, publish_reading, repeat=True)
mgr.run()
