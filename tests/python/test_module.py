"""The module's constants and packaging."""
import cymongoose
from cymongoose import _mongoose


def test_event_constants_have_api_values():
    expected = {
        "MG_EV_ERROR": 0, "MG_EV_OPEN": 1, "MG_EV_POLL": 2, "MG_EV_RESOLVE": 3,
        "MG_EV_CONNECT": 4, "MG_EV_ACCEPT": 5, "MG_EV_TLS_HS": 6, "MG_EV_READ": 7,
        "MG_EV_WRITE": 8, "MG_EV_CLOSE": 9, "MG_EV_HTTP_HDRS": 10, "MG_EV_HTTP_MSG": 11,
        "MG_EV_WS_OPEN": 12, "MG_EV_WS_MSG": 13, "MG_EV_WS_CTL": 14, "MG_EV_MQTT_CMD": 15,
        "MG_EV_MQTT_MSG": 16, "MG_EV_MQTT_OPEN": 17, "MG_EV_SNTP_TIME": 18,
        "MG_EV_WAKEUP": 19, "MG_EV_USER": 22,
    }
    for name, value in expected.items():
        assert getattr(cymongoose, name) == value, name


def test_other_constants():
    assert (cymongoose.WEBSOCKET_OP_TEXT, cymongoose.WEBSOCKET_OP_BINARY,
            cymongoose.WEBSOCKET_OP_CLOSE, cymongoose.WEBSOCKET_OP_PING,
            cymongoose.WEBSOCKET_OP_PONG) == (1, 2, 8, 9, 10)
    assert [getattr(cymongoose, "MG_LL_" + n) for n in
            ("NONE", "ERROR", "INFO", "DEBUG", "VERBOSE")] == [0, 1, 2, 3, 4]
    names = ["BYTE", "STRING", "STRING_PAIR", "BINARY_DATA", "VARIABLE_INT", "INT", "SHORT"]
    assert [getattr(cymongoose, "MQTT_PROP_TYPE_" + n) for n in names] == list(range(7))


def test_all_and_version():
    assert isinstance(cymongoose.__version__, str)
    for name in cymongoose.__all__:
        assert hasattr(cymongoose, name), name
    assert "MG_EV_HTTP_MSG" in cymongoose.__all__
    assert _mongoose.__name__ == "cymongoose._mongoose"
