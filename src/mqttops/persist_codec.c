/* The persistence log's record codec: pure, no I/O (include/cymongoose/mqtt_ops.h). */
#include <string.h>

#include "cymongoose.h"

/* Which fields each record type carries. */
enum { F_CLIENT = 1, F_TOPIC = 2, F_NUM = 4, F_ID = 8, F_SMALL = 16, F_MSG = 32 };

static int fields_of(uint8_t type) {
  switch (type) {
    case CM_REC_RETAIN: return F_TOPIC | F_MSG;
    case CM_REC_RETAIN_CLEAR: return F_TOPIC;
    case CM_REC_SESSION: return F_CLIENT | F_NUM;
    case CM_REC_SESSION_DEL: return F_CLIENT;
    case CM_REC_SUB_ADD: return F_CLIENT | F_TOPIC | F_SMALL | F_NUM;
    case CM_REC_SUB_DEL: return F_CLIENT | F_TOPIC;
    case CM_REC_MSG_HELD: return F_CLIENT | F_ID | F_SMALL | F_MSG;
    case CM_REC_MSG_STATE: return F_CLIENT | F_ID | F_SMALL;
    case CM_REC_MSG_DONE: return F_CLIENT | F_ID;
    case CM_REC_INCOMING: return F_CLIENT | F_ID | F_SMALL;
    default: return -1;
  }
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int app_u32(struct cm_buf *o, uint32_t v) {
  uint8_t b[4];
  put_u32(b, v);
  return cm_buf_append(o, b, 4);
}

static int app_str(struct cm_buf *o, struct cm_str s) {
  if (s.len > CM_PERSIST_MAX_RECORD) return -1;
  if (app_u32(o, (uint32_t)s.len) != 0) return -1;
  return s.len == 0 ? 0 : cm_buf_append(o, s.buf, s.len);
}

int cm_persist_encode(struct cm_buf *out, const struct cm_persist_rec *r) {
  int f = fields_of(r->type);
  if (f < 0) return CM_EINVAL;
  size_t start = out->len;
  uint8_t hdr[8] = {0};
  int rc = cm_buf_append(out, hdr, sizeof(hdr));
  rc |= cm_buf_append(out, &r->type, 1);
  if (f & F_CLIENT) rc |= app_str(out, r->client);
  if (f & F_TOPIC) rc |= app_str(out, r->topic);
  if (f & F_NUM) rc |= app_u32(out, r->num);
  if (f & F_ID) {
    uint8_t id[2] = {(uint8_t)r->id, (uint8_t)(r->id >> 8)};
    rc |= cm_buf_append(out, id, 2);
  }
  if (f & F_SMALL) rc |= cm_buf_append(out, &r->small, 1);
  if (f & F_MSG) {
    uint8_t qr[2] = {r->m_qos, r->m_retain ? 1 : 0};
    rc |= app_str(out, r->m_topic);
    rc |= app_str(out, r->m_payload);
    rc |= app_str(out, r->m_props);
    rc |= cm_buf_append(out, qr, 2);
    rc |= app_u32(out, r->m_expiry_s);
  }
  size_t body = out->len - start - 8;
  if (rc != 0 || body > CM_PERSIST_MAX_RECORD) {
    out->len = start;
    return rc != 0 ? CM_ENOMEM : CM_ETOOBIG;
  }
  uint8_t *p = cm_buf_data(out) + start;
  put_u32(p, (uint32_t)body);
  put_u32(p + 4, cm_crc32(0, p + 8, body));
  return 0;
}

/* A cursor over a record body. */
struct rd {
  const uint8_t *p;
  size_t left;
  bool bad;
};

static uint32_t rd_u32(struct rd *d) {
  if (d->left < 4) return d->bad = true, 0;
  uint32_t v = get_u32(d->p);
  d->p += 4, d->left -= 4;
  return v;
}

static uint8_t rd_u8(struct rd *d) {
  if (d->left < 1) return d->bad = true, 0;
  d->left--;
  return *d->p++;
}

static struct cm_str rd_str(struct rd *d) {
  uint32_t n = rd_u32(d);
  if (d->bad || n > d->left) return d->bad = true, cm_str_n("", 0);
  struct cm_str s = cm_str_n((const char *)d->p, n);
  d->p += n, d->left -= n;
  return s;
}

long cm_persist_decode(const uint8_t *buf, size_t len, struct cm_persist_rec *r,
                       const char **why) {
  static const char *dummy;
  if (why == NULL) why = &dummy;
  if (len < 8) return 0;
  uint32_t body = get_u32(buf);
  if (body > CM_PERSIST_MAX_RECORD || body == 0) return *why = "bad record length", CM_EPARSE;
  if (len - 8 < body) return 0;
  if (cm_crc32(0, buf + 8, body) != get_u32(buf + 4)) return *why = "CRC mismatch", CM_EPARSE;
  struct rd d = {buf + 8, body, false};
  memset(r, 0, sizeof(*r));
  r->type = rd_u8(&d);
  int f = fields_of(r->type);
  if (f < 0) return *why = "unknown record type", CM_EPARSE;
  if (f & F_CLIENT) r->client = rd_str(&d);
  if (f & F_TOPIC) r->topic = rd_str(&d);
  if (f & F_NUM) r->num = rd_u32(&d);
  if (f & F_ID) {
    uint8_t lo = rd_u8(&d), hi = rd_u8(&d);
    r->id = (uint16_t)(lo | hi << 8);
  }
  if (f & F_SMALL) r->small = rd_u8(&d);
  if (f & F_MSG) {
    r->m_topic = rd_str(&d);
    r->m_payload = rd_str(&d);
    r->m_props = rd_str(&d);
    r->m_qos = rd_u8(&d);
    uint8_t ret = rd_u8(&d);
    r->m_expiry_s = rd_u32(&d);
    if (r->m_qos > 2 || ret > 1) d.bad = true;
    r->m_retain = ret == 1;
  }
  if (d.bad || d.left != 0) return *why = "record fields do not match its length", CM_EPARSE;
  return (long)(8 + body);
}
