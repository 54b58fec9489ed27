/* cymongoose._mongoose: module definition, constants and module state. */
#include "module.h"

static int add_constants(PyObject *m) {
  static const struct {
    const char *name;
    long value;
  } constants[] = {
      {"MG_EV_ERROR", CM_EV_ERROR},         {"MG_EV_OPEN", CM_EV_OPEN},
      {"MG_EV_POLL", CM_EV_POLL},           {"MG_EV_RESOLVE", CM_EV_RESOLVE},
      {"MG_EV_CONNECT", CM_EV_CONNECT},     {"MG_EV_ACCEPT", CM_EV_ACCEPT},
      {"MG_EV_TLS_HS", CM_EV_TLS_HS},       {"MG_EV_READ", CM_EV_READ},
      {"MG_EV_WRITE", CM_EV_WRITE},         {"MG_EV_CLOSE", CM_EV_CLOSE},
      {"MG_EV_HTTP_HDRS", CM_EV_HTTP_HDRS}, {"MG_EV_HTTP_MSG", CM_EV_HTTP_MSG},
      {"MG_EV_WS_OPEN", CM_EV_WS_OPEN},     {"MG_EV_WS_MSG", CM_EV_WS_MSG},
      {"MG_EV_WS_CTL", CM_EV_WS_CTL},       {"MG_EV_MQTT_CMD", CM_EV_MQTT_CMD},
      {"MG_EV_MQTT_MSG", CM_EV_MQTT_MSG},   {"MG_EV_MQTT_OPEN", CM_EV_MQTT_OPEN},
      {"MG_EV_SNTP_TIME", CM_EV_SNTP_TIME}, {"MG_EV_WAKEUP", CM_EV_WAKEUP},
      {"MG_EV_USER", CM_EV_USER},
      {"WEBSOCKET_OP_TEXT", 1},             {"WEBSOCKET_OP_BINARY", 2},
      {"WEBSOCKET_OP_CLOSE", 8},            {"WEBSOCKET_OP_PING", 9},
      {"WEBSOCKET_OP_PONG", 10},
      {"MG_LL_NONE", CM_LL_NONE},           {"MG_LL_ERROR", CM_LL_ERROR},
      {"MG_LL_INFO", CM_LL_INFO},           {"MG_LL_DEBUG", CM_LL_DEBUG},
      {"MG_LL_VERBOSE", CM_LL_VERBOSE},
      {"MQTT_PROP_TYPE_BYTE", 0},           {"MQTT_PROP_TYPE_STRING", 1},
      {"MQTT_PROP_TYPE_STRING_PAIR", 2},    {"MQTT_PROP_TYPE_BINARY_DATA", 3},
      {"MQTT_PROP_TYPE_VARIABLE_INT", 4},   {"MQTT_PROP_TYPE_INT", 5},
      {"MQTT_PROP_TYPE_SHORT", 6},
  };
  for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
    if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) return -1;
  }
  return 0;
}

static int module_exec(PyObject *m) {
  cm_log_set(CM_LL_NONE); /* importing the module silences the C log */
  if (add_constants(m) < 0) return -1;
  if (cm_py_core_exec(m) < 0) return -1;
  if (cm_py_messages_exec(m) < 0) return -1;
  if (cm_py_tls_exec(m) < 0) return -1;
  if (cm_py_funcs_exec(m) < 0) return -1;
  if (cm_py_rpc_exec(m) < 0) return -1;
  if (cm_py_asgi_exec(m) < 0) return -1;
  if (cm_py_wsgi_exec(m) < 0) return -1;
  if (cm_py_mqtt_broker_exec(m, PyModule_GetState(m)) < 0) return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  cm_py_state *st = PyModule_GetState(m);
  Py_VISIT(st->manager_type);
  Py_VISIT(st->connection_type);
  Py_VISIT(st->timer_type);
  Py_VISIT(st->http_message_type);
  Py_VISIT(st->ws_message_type);
  Py_VISIT(st->mqtt_message_type);
  Py_VISIT(st->mqtt_session_type);
  Py_VISIT(st->mqtt_sessions);
  Py_VISIT(st->mqtt_broker_type);
  Py_VISIT(st->tls_opts_type);
  Py_VISIT(st->rpc_type);
  Py_VISIT(st->rpc_req_type);
  Py_VISIT(st->json_dumps);
  return 0;
}

static int module_clear(PyObject *m) {
  cm_py_state *st = PyModule_GetState(m);
  Py_CLEAR(st->manager_type);
  Py_CLEAR(st->connection_type);
  Py_CLEAR(st->timer_type);
  Py_CLEAR(st->http_message_type);
  Py_CLEAR(st->ws_message_type);
  Py_CLEAR(st->mqtt_message_type);
  Py_CLEAR(st->mqtt_sessions);
  Py_CLEAR(st->mqtt_session_type);
  Py_CLEAR(st->mqtt_broker_type);
  Py_CLEAR(st->tls_opts_type);
  Py_CLEAR(st->rpc_type);
  Py_CLEAR(st->rpc_req_type);
  Py_CLEAR(st->json_dumps);
  Py_CLEAR(st->spare_http_message);
  return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyModuleDef cm_py_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cymongoose._mongoose",
    .m_doc = "C core of cymongoose: event manager, connections and protocols.",
    .m_size = sizeof(cm_py_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__mongoose(void) { return PyModuleDef_Init(&cm_py_module_def); }
