/*
 * Connection methods implemented outside connection.c, one block per
 * protocol file.  connection.c includes this file inside its PyMethodDef
 * table, so each entry is a PyMethodDef initialiser followed by a comma.
 * Declare the functions in the matching section of CM_PY_CONN_DECLS.
 */
#ifndef CM_PY_CONN_METHODS_DECLS
#define CM_PY_CONN_METHODS_DECLS
/* conn_http.c */
/* conn_ws.c */
#endif

#ifdef CM_PY_CONN_METHODS_TABLE
/* conn_http.c */
/* conn_ws.c */
#endif
