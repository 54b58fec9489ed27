/*
 * Shared by the connection-level fuzz harnesses (fuzz_mqtt_conn.c,
 * fuzz_ws_conn.c): a raw loopback client that plays a fuzz input at one of
 * our listeners, and the poll loop that waits for our side to clean up.
 * Header-only (static functions) because each harness is one translation
 * unit linked alone against the library.
 */
#ifndef CM_FUZZ_RAW_PEER_H
#define CM_FUZZ_RAW_PEER_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cymongoose.h"

#define FUZZ_MAX_POLLS 20000 /* about 20 s of 1 ms polls: a hang */

/* Polls mgr until only its `listeners` connections are left; a hang aborts. */
static void fuzz_settle(struct cm_mgr *mgr, size_t listeners) {
  for (int i = 0; mgr->nconns > listeners; i++) {
    if (i == FUZZ_MAX_POLLS) abort();
    cm_mgr_poll(mgr, 1);
  }
}

/*
 * Connects a raw non-blocking client to 127.0.0.1:port, sends head (may be
 * empty) then data, shuts its write side (after everything is sent, or after
 * 1000 polls if our side stops reading), reads and discards until our side
 * closes, then settles mgr down to `listeners` connections.  Both buffers
 * are only read during the call.  Any socket setup failure or hang aborts.
 */
static void fuzz_play_raw(struct cm_mgr *mgr, size_t listeners, uint16_t port, const char *head,
                          size_t head_len, const uint8_t *data, size_t len) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) abort();
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t off = 0, total = head_len + len;
  bool shut = false, eof = false;
  char sink[65536];
  for (int i = 0; !eof; i++) {
    if (i == FUZZ_MAX_POLLS) abort();
    while (off < total) {
      const void *p = off < head_len ? (const void *)(head + off)
                                     : (const void *)(data + off - head_len);
      size_t chunk = off < head_len ? head_len - off : total - off;
      ssize_t w = send(fd, p, chunk, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += (size_t)w;
    }
    if (!shut && (off == total || i > 1000)) {
      shutdown(fd, SHUT_WR);
      shut = true;
    }
    cm_mgr_poll(mgr, 1);
    for (;;) {
      ssize_t r = recv(fd, sink, sizeof(sink), 0);
      if (r > 0) continue;
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
      break;
    }
  }
  close(fd);
  fuzz_settle(mgr, listeners);
}

#endif
