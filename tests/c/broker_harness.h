/* Shared harness of the broker tests: a broker on a manager, client
 * programs whose output is read while the broker runs, our C client
 * recording what it receives, raw TCP peers. */
#ifndef CM_BROKER_HARNESS_H
#define CM_BROKER_HARNESS_H

#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "peerproc.h"
#include "testutil.h"

/* ---------------------------------------------------------------- harness */

struct bk {
  struct cm_mgr mgr;
  struct cm_mqtt_broker *b;
  unsigned port;
};

static inline void bk_start(struct bk *k, struct cm_mqtt_broker_opts *o) {
  struct cm_mqtt_broker_opts def = {0};
  if (o == NULL) {
    def.allow_anonymous = true;
    o = &def;
  }
  assert_int_equal(cm_mgr_init(&k->mgr), 0);
  k->b = cm_mqtt_broker_new(&k->mgr, o);
  assert_non_null(k->b);
  struct cm_conn *l = cm_mqtt_broker_listen(k->b, "mqtt://127.0.0.1:0", NULL);
  assert_non_null(l);
  k->port = l->loc.port;
}

static inline void bk_stop(struct bk *k) {
  cm_mqtt_broker_free(k->b);
  cm_mgr_poll(&k->mgr, 0);
  cm_mgr_free(&k->mgr);
}

static inline struct cm_mqtt_broker_stats bk_stats(struct bk *k) {
  struct cm_mqtt_broker_stats st;
  cm_mqtt_broker_stats(k->b, &st);
  return st;
}

/* Polls until *flag (or ~5 s). */
static inline bool poll_for(struct bk *k, const volatile bool *flag) {
  for (int i = 0; i < 1000 && !*flag; i++) cm_mgr_poll(&k->mgr, 5);
  return *flag;
}

static inline void poll_ms(struct bk *k, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (cm_millis() < end) cm_mgr_poll(&k->mgr, 5);
}

/* A client program whose stdout we read while the broker runs. */
struct proc {
  pid_t pid;
  int fd;
  char out[8192];
  size_t len;
};

static inline void proc_start(struct proc *p, const char *const argv[]) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  assert_int_equal(posix_spawnp(&p->pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  p->fd = fds[0];
  fcntl(p->fd, F_SETFL, O_NONBLOCK);
  p->len = 0;
  p->out[0] = '\0';
}

static inline void proc_read(struct proc *p) {
  ssize_t r;
  while (p->len < sizeof(p->out) - 1 &&
         (r = read(p->fd, p->out + p->len, sizeof(p->out) - 1 - p->len)) > 0)
    p->len += (size_t)r;
  p->out[p->len] = '\0';
}

/* Polls until the program exits; returns its exit status. */
static inline int proc_end(struct bk *k, struct proc *p) {
  int status = -1;
  for (int i = 0; i < 2000; i++) {
    proc_read(p);
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      proc_read(p);
      close(p->fd);
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    cm_mgr_poll(&k->mgr, 5);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &status, 0);
  close(p->fd);
  return -1;
}

static inline void wait_subs(struct bk *k, uint32_t n) {
  for (int i = 0; i < 1600 && bk_stats(k).subscriptions < n; i++) cm_mgr_poll(&k->mgr, 5);
  assert_true(bk_stats(k).subscriptions >= n);
}

/* Our C client, recording what it sees. */
#define MAXMSG 64
struct rmsg {
  char topic[64];
  char payload[64];
  uint8_t qos;
  bool retain, dup;
  uint32_t sub_id;
  char user_prop[64];
};
struct cli {
  struct cm_conn *c;
  bool open, closed, got_suback, got_disc, got_puback;
  bool session_present;
  int connack;
  uint8_t suback[8];
  uint8_t disc_reason, puback_reason;
  char assigned[64];
  struct rmsg m[MAXMSG];
  int n;
};

static inline void cpy(char *dst, size_t cap, struct cm_str s) {
  size_t n = s.len < cap - 1 ? s.len : cap - 1;
  memcpy(dst, s.buf, n);
  dst[n] = '\0';
}

static inline void cli_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct cli *k = c->fn_data;
  if (ev == CM_EV_MQTT_CMD) {
    struct cm_mqtt_msg *mm = ev_data;
    struct cm_mqtt_prop p;
    if (mm->cmd == CM_MQTT_CMD_CONNACK) {
      k->connack = mm->ack;
      k->session_present = mm->session_present;
      if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER, &p))
        cpy(k->assigned, sizeof(k->assigned), p.val);
      if (mm->ack != 0) k->closed = true;
    } else if (mm->cmd == CM_MQTT_CMD_SUBACK) {
      size_t pos = 0, i = 0;
      uint8_t code;
      while (i < sizeof(k->suback) && cm_mqtt_list_next(mm->pkt, &pos, NULL, &code)) k->suback[i++] = code;
      k->got_suback = true;
    } else if (mm->cmd == CM_MQTT_CMD_DISCONNECT) {
      k->disc_reason = mm->ack;
      k->got_disc = true;
    } else if (mm->cmd == CM_MQTT_CMD_PUBACK || mm->cmd == CM_MQTT_CMD_PUBREC) {
      k->puback_reason = mm->ack;
      k->got_puback = true;
    }
  } else if (ev == CM_EV_MQTT_OPEN) {
    k->open = true;
  } else if (ev == CM_EV_MQTT_MSG && k->n < MAXMSG) {
    struct cm_mqtt_msg *mm = ev_data;
    struct rmsg *r = &k->m[k->n++];
    memset(r, 0, sizeof(*r));
    cpy(r->topic, sizeof(r->topic), mm->topic);
    cpy(r->payload, sizeof(r->payload), mm->data);
    r->qos = mm->qos;
    r->retain = mm->retain;
    r->dup = mm->dup;
    struct cm_mqtt_prop p;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &p)) r->sub_id = p.iv;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_USER_PROPERTY, &p)) {
      char kv[64];
      snprintf(kv, sizeof(kv), "%.*s=%.*s", (int)p.key.len, p.key.buf, (int)p.val.len, p.val.buf);
      cpy(r->user_prop, sizeof(r->user_prop), cm_str_c(kv));
    }
  } else if (ev == CM_EV_CLOSE) {
    k->closed = true;
    k->c = NULL;
  }
}

static inline void cli_connect_opts(struct bk *k, struct cli *cl, struct cm_mqtt_opts *o) {
  memset(cl, 0, sizeof(*cl));
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", k->port);
  cl->c = cm_mqtt_connect(&k->mgr, url, o, cli_fn, cl);
  assert_non_null(cl->c);
  for (int i = 0; i < 1000 && !cl->open && !cl->closed; i++) cm_mgr_poll(&k->mgr, 5);
}

static inline void cli_connect(struct bk *k, struct cli *cl, const char *id, uint8_t v, bool clean) {
  struct cm_mqtt_opts o = {0};
  o.client_id = cm_str_c(id);
  o.version = v;
  o.clean = clean;
  cli_connect_opts(k, cl, &o);
  assert_true(cl->open);
}

static inline void cli_sub(struct bk *k, struct cli *cl, const char *filter, uint8_t opts, uint32_t sub_id) {
  struct cm_mqtt_sub_opts so = {0};
  so.topic = cm_str_c(filter);
  so.qos = opts & 3;
  so.no_local = (opts & CM_MQTT_SUB_NO_LOCAL) != 0;
  so.retain_as_published = (opts & CM_MQTT_SUB_RETAIN_AS_PUBLISHED) != 0;
  so.retain_handling = (uint8_t)(opts >> 4 & 3);
  cl->got_suback = false;
  assert_true(cm_mqtt_subscribe(cl->c, &so, 1, sub_id, NULL, 0) > 0);
  assert_true(poll_for(k, &cl->got_suback));
}

static inline void cli_pub(struct cli *cl, const char *topic, const char *msg, int qos, bool retain) {
  assert_true(cm_mqtt_pub(cl->c, cm_str_c(topic), cm_str_c(msg), qos, retain) >= 0);
}

/* Polls until the client received n messages (or ~5 s). */
static inline bool cli_wait(struct bk *k, struct cli *cl, int n) {
  for (int i = 0; i < 1000 && cl->n < n; i++) cm_mgr_poll(&k->mgr, 5);
  return cl->n >= n;
}

static inline void cli_drop(struct bk *k, struct cli *cl) {
  if (cl->c != NULL) cm_close(cl->c);
  poll_for(k, &cl->closed);
}

/* A raw TCP client for protocol violations. */
static inline int raw_connect(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static inline void raw_send(int fd, const void *p, size_t n) {
  assert_int_equal(write(fd, p, n), (ssize_t)n);
}

/* Reads what arrives until EOF (or ~3 s); returns bytes read, *eof set. */
static inline size_t raw_read(struct bk *k, int fd, uint8_t *buf, size_t cap, bool *eof, size_t want) {
  size_t len = 0;
  *eof = false;
  for (int i = 0; i < 600 && !*eof && (want == 0 || len < want); i++) {
    cm_mgr_poll(&k->mgr, 5);
    ssize_t r = read(fd, buf + len, cap - len);
    if (r == 0) *eof = true;
    if (r > 0) len += (size_t)r;
  }
  return len;
}

/* CONNECT v5, client id "raw", clean start, keepalive ka. */
static const uint8_t CONNECT_V5[] = {0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0,
                                     0, 0, 3, 'r', 'a', 'w'};

#endif
