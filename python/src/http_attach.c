/*
 * Minimal HTTP protocol hook for Manager.listen()/connect() (declared weak
 * in core.h): HTTP parsing on listeners (children inherit it) and clients.
 * Stand-in until the HTTP bindings (conn_http.c) define the full one; the
 * lead drops this file when they land.
 */
#include "core.h"

int cm_py_http_attach(cm_py_conn *co, struct cm_conn *c) {
  (void)co;
  bool ok = c->is_client ? cm_http_client(c, NULL) : cm_http_serve(c, NULL);
  if (!ok) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}
