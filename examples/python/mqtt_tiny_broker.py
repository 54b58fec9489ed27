"""A tiny MQTT broker on Manager.mqtt_listen, in the low-level style of the
original package: the handler answers CONNECT, SUBSCRIBE, UNSUBSCRIBE and
PINGREQ itself and forwards each PUBLISH to the matching subscribers.
(QoS acks of incoming PUBLISHes are sent by the library.)  No retained
messages, sessions or wills: a teaching example, see docs/mqtt.md.

    python3 mqtt_tiny_broker.py [LISTEN_URL]      # default mqtt://127.0.0.1:1883
    mosquitto_sub -p 1883 -t 'demo/#' &  mosquitto_pub -p 1883 -t demo/x -m hi
"""
import sys

from cymongoose import MG_EV_CLOSE, MG_EV_MQTT_CMD, MG_EV_MQTT_MSG, Manager

CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 1, 8, 10, 12, 14
subscriptions = []  # (connection, topic filter, granted QoS)


def matches(topic, pattern):
    """MQTT filter matching: '+' is one level, a final '#' the rest."""
    t, p = topic.split("/"), pattern.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or part not in ("+", t[i]):
            return False
    return len(t) == len(p)


def packet(first_byte, body):
    return bytes([first_byte, len(body)]) + body  # bodies here stay under 128 bytes


def handler(conn, ev, data):
    global subscriptions
    if ev == MG_EV_MQTT_CMD:
        props = b"\x00" if data.version == 5 else b""  # MQTT 5: empty property block
        if data.cmd == CONNECT:
            print("client", data.client_id, "connected, MQTT level", data.version, flush=True)
            conn.send(packet(0x20, b"\x00\x00" + props))              # CONNACK, accepted
        elif data.cmd == SUBSCRIBE:
            granted = []
            for topic_filter, options in data.topics():
                subscriptions.append((conn, topic_filter, options & 3))
                granted.append(options & 3)
            conn.send(packet(0x90, data.id.to_bytes(2, "big") + props + bytes(granted)))
        elif data.cmd == UNSUBSCRIBE:
            gone = [f for f, _ in data.topics()]
            subscriptions = [s for s in subscriptions if s[0] is not conn or s[1] not in gone]
            codes = bytes(len(gone)) if data.version == 5 else b""
            conn.send(packet(0xB0, data.id.to_bytes(2, "big") + props + codes))
        elif data.cmd == PINGREQ:
            conn.mqtt_pong()
        elif data.cmd == DISCONNECT:
            conn.drain()
    elif ev == MG_EV_MQTT_MSG:
        for sub, topic_filter, qos in subscriptions:
            if matches(data.topic, topic_filter):
                sub.mqtt_pub(data.topic, data.data, qos=min(qos, data.qos))
    elif ev == MG_EV_CLOSE:
        subscriptions = [s for s in subscriptions if s[0] is not conn]


mgr = Manager()
url = sys.argv[1] if len(sys.argv) > 1 else "mqtt://127.0.0.1:1883"
listener = mgr.mqtt_listen(url, handler)
print("listening on port", listener.local_addr[1], flush=True)
mgr.run()
