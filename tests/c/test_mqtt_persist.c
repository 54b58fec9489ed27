/* Persistence: the record codec (round trips, torn and corrupt records)
 * and the store (hooks -> file -> reopen, torn tail, corruption, compaction,
 * fsync policies). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "cymongoose.h"

#define S(x) cm_str_c(x)

static const struct cm_persist_rec samples[] = {
    {.type = CM_REC_RETAIN, .topic = {"a/b", 3}, .m_topic = {"a/b", 3}, .m_payload = {"hi", 2},
     .m_props = {"\x01\x01", 2}, .m_qos = 1, .m_retain = true, .m_expiry_s = 60},
    {.type = CM_REC_RETAIN_CLEAR, .topic = {"a/b", 3}},
    {.type = CM_REC_SESSION, .client = {"c1", 2}, .num = 0xFFFFFFFFu},
    {.type = CM_REC_SESSION_DEL, .client = {"c1", 2}},
    {.type = CM_REC_SUB_ADD, .client = {"c1", 2}, .topic = {"x/#", 3}, .small = 2, .num = 7},
    {.type = CM_REC_SUB_DEL, .client = {"c1", 2}, .topic = {"x/#", 3}},
    {.type = CM_REC_MSG_HELD, .client = {"c1", 2}, .id = 513, .small = 1, .m_topic = {"t", 1},
     .m_payload = {"", 0}, .m_qos = 2},
    {.type = CM_REC_MSG_STATE, .client = {"c1", 2}, .id = 65535, .small = 2},
    {.type = CM_REC_MSG_DONE, .client = {"c1", 2}, .id = 1},
    {.type = CM_REC_INCOMING, .client = {"", 0}, .id = 9, .small = 1},
};

static bool str_eq(struct cm_str a, struct cm_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.buf, b.buf, a.len) == 0);
}

static void assert_rec_equal(const struct cm_persist_rec *a, const struct cm_persist_rec *b) {
  assert_int_equal(a->type, b->type);
  assert_true(str_eq(a->client, b->client));
  assert_true(str_eq(a->topic, b->topic));
  assert_int_equal(a->num, b->num);
  assert_int_equal(a->id, b->id);
  assert_int_equal(a->small, b->small);
  assert_true(str_eq(a->m_topic, b->m_topic));
  assert_true(str_eq(a->m_payload, b->m_payload));
  assert_true(str_eq(a->m_props, b->m_props));
  assert_int_equal(a->m_qos, b->m_qos);
  assert_int_equal(a->m_retain, b->m_retain);
  assert_int_equal(a->m_expiry_s, b->m_expiry_s);
}

static void codec_round_trip(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
    struct cm_buf b = {0};
    assert_int_equal(cm_persist_encode(&b, &samples[i]), 0);
    struct cm_persist_rec r;
    const uint8_t *p = cm_buf_data(&b);
    assert_int_equal(cm_persist_decode(p, b.len, &r, NULL), (long)b.len);
    assert_rec_equal(&r, &samples[i]);
    /* every prefix is incomplete, never an error */
    for (size_t k = 0; k < b.len; k++) assert_int_equal(cm_persist_decode(p, k, &r, NULL), 0);
    /* every flipped bit after the length is caught */
    for (size_t k = 4 * 8; k < b.len * 8; k++) {
      p = cm_buf_data(&b);
      ((uint8_t *)p)[k / 8] ^= (uint8_t)(1u << (k % 8));
      const char *why = NULL;
      assert_int_equal(cm_persist_decode(p, b.len, &r, &why), CM_EPARSE);
      assert_non_null(why);
      ((uint8_t *)p)[k / 8] ^= (uint8_t)(1u << (k % 8));
    }
    cm_buf_free(&b);
  }
}

static void codec_rejects(void **state) {
  (void)state;
  struct cm_buf b = {0};
  struct cm_persist_rec bad = {.type = 0};
  assert_int_equal(cm_persist_encode(&b, &bad), CM_EINVAL);
  bad.type = CM_REC_MAX_;
  assert_int_equal(cm_persist_encode(&b, &bad), CM_EINVAL);
  assert_int_equal(b.len, 0);
  struct cm_persist_rec r;
  const char *why;
  /* length 0 and over the maximum */
  uint8_t zero[8] = {0};
  assert_int_equal(cm_persist_decode(zero, 8, &r, &why), CM_EPARSE);
  assert_string_equal(why, "bad record length");
  uint8_t huge[8] = {0xFF, 0xFF, 0xFF, 0xFF};
  assert_int_equal(cm_persist_decode(huge, 8, &r, &why), CM_EPARSE);
  /* a valid crc over an unknown type, over a body too short for its type,
   * and over a body with bytes left over */
  uint8_t rec[16] = {1, 0, 0, 0, 0, 0, 0, 0, 99};
  uint32_t crc = cm_crc32(0, rec + 8, 1);
  memcpy(rec + 4, &crc, 4);
  assert_int_equal(cm_persist_decode(rec, 9, &r, &why), CM_EPARSE);
  assert_string_equal(why, "unknown record type");
  rec[8] = CM_REC_MSG_DONE;
  crc = cm_crc32(0, rec + 8, 1);
  memcpy(rec + 4, &crc, 4);
  assert_int_equal(cm_persist_decode(rec, 9, &r, &why), CM_EPARSE);
  assert_string_equal(why, "record fields do not match its length");
  /* MSG_DONE with an empty client id: 1 + 4 + 2 bytes, plus one extra */
  uint8_t ok[16] = {8, 0, 0, 0, 0, 0, 0, 0, CM_REC_MSG_DONE, 0, 0, 0, 0, 5, 0, 0xEE};
  crc = cm_crc32(0, ok + 8, 8);
  memcpy(ok + 4, &crc, 4);
  assert_int_equal(cm_persist_decode(ok, 16, &r, &why), CM_EPARSE);
  ok[0] = 7;
  crc = cm_crc32(0, ok + 8, 7);
  memcpy(ok + 4, &crc, 4);
  assert_int_equal(cm_persist_decode(ok, 16, &r, &why), 15);
  assert_int_equal(r.id, 5);
  cm_buf_free(&b);
}

/* ---------------------------------------------------------------- store */
static char dir[64], path[128];

static int setup(void **state) {
  (void)state;
  strcpy(dir, "/tmp/cm-persist-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(path, sizeof(path), "%s/state.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[200];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static struct cm_persist *open_store(int policy) {
  char err[CM_OPS_ERR_LEN];
  struct cm_persist *p = cm_persist_open(path, policy, 10, err, sizeof(err));
  if (p == NULL) fail_msg("%s", err);
  return p;
}

static off_t file_size(const char *f) {
  struct stat st;
  return stat(f, &st) == 0 ? st.st_size : -1;
}

/* Drives the hooks as the broker does. */
static void some_traffic(struct cm_mqtt_broker_store *st) {
  struct cm_mqtt_broker_msg m = {S("r/1"), S("v1"), S(""), 1, true, 0};
  st->retain(st->arg, S("r/1"), &m);
  m.payload = S("v2");
  st->retain(st->arg, S("r/1"), &m); /* replaced */
  st->retain(st->arg, S("r/2"), &m);
  st->retain(st->arg, S("r/2"), NULL); /* cleared */
  st->session_save(st->arg, S("sub1"), 3600);
  st->sub_add(st->arg, S("sub1"), S("t/#"), 1, 0);
  st->sub_add(st->arg, S("sub1"), S("u/+"), 2, 5);
  st->sub_del(st->arg, S("sub1"), S("u/+"));
  m = (struct cm_mqtt_broker_msg){S("t/a"), S("p"), S(""), 1, false, 0};
  for (uint16_t id = 1; id <= 5; id++) st->msg_held(st->arg, S("sub1"), id, CM_MQTT_HELD_QUEUED, &m);
  st->msg_state(st->arg, S("sub1"), 2, CM_MQTT_HELD_SENT);
  st->msg_done(st->arg, S("sub1"), 1);
  st->incoming(st->arg, S("sub1"), 77, true);
  st->incoming(st->arg, S("sub1"), 78, true);
  st->incoming(st->arg, S("sub1"), 77, false);
  st->session_save(st->arg, S("gone"), 10);
  st->session_delete(st->arg, S("gone"));
}

static void check_state(struct cm_persist *p) {
  assert_int_equal(cm_persist_count_retained(p), 1);
  assert_int_equal(cm_persist_count_sessions(p), 1);
  assert_int_equal(cm_persist_count_held(p, S("sub1")), 4);
  assert_int_equal(cm_persist_count_held(p, S("gone")), 0);
}

static void survives_reopen(void **state) {
  (void)state;
  for (int policy = CM_FSYNC_ALWAYS; policy <= CM_FSYNC_NEVER; policy++) {
    unlink(path);
    struct cm_persist *p = open_store(policy);
    struct cm_mqtt_broker_store st;
    cm_persist_hooks(p, &st);
    some_traffic(&st);
    check_state(p);
    /* No close: what a SIGKILL leaves (the kernel has every write). */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct cm_persist *q = open_store(policy);
    check_state(q);
    close(fd);
    cm_persist_close(q);
    cm_persist_close(p);
  }
}

static void compaction_shrinks(void **state) {
  (void)state;
  unlink(path);
  struct cm_persist *p = open_store(CM_FSYNC_NEVER);
  struct cm_mqtt_broker_store st;
  cm_persist_hooks(p, &st);
  struct cm_mqtt_broker_msg m = {S("t"), S("0123456789"), S(""), 1, false, 0};
  st.session_save(st.arg, S("c"), 0xFFFFFFFFu);
  for (int i = 0; i < 1000; i++) {
    st.msg_held(st.arg, S("c"), (uint16_t)(i % 100 + 1), CM_MQTT_HELD_QUEUED, &m);
    st.msg_done(st.arg, S("c"), (uint16_t)(i % 100 + 1));
  }
  st.msg_held(st.arg, S("c"), 9, CM_MQTT_HELD_SENT, &m);
  assert_int_equal(cm_persist_records_since_compact(p), 2002);
  cm_persist_flush(p, false);
  off_t before = file_size(path);
  assert_true(cm_persist_compact(p) == 0);
  off_t after = file_size(path);
  assert_true(after < before / 100);
  assert_int_equal(cm_persist_records_since_compact(p), 0);
  st.msg_held(st.arg, S("c"), 10, CM_MQTT_HELD_QUEUED, &m); /* appends after the snapshot */
  cm_persist_close(p);
  p = open_store(CM_FSYNC_NEVER);
  assert_int_equal(cm_persist_count_held(p, S("c")), 2);
  cm_persist_close(p);
}

static void torn_tail_and_corruption(void **state) {
  (void)state;
  unlink(path);
  struct cm_persist *p = open_store(CM_FSYNC_ALWAYS);
  struct cm_mqtt_broker_store st;
  cm_persist_hooks(p, &st);
  struct cm_mqtt_broker_msg m = {S("t"), S("payload"), S(""), 1, false, 0};
  st.session_save(st.arg, S("c"), 0xFFFFFFFFu);
  st.msg_held(st.arg, S("c"), 1, CM_MQTT_HELD_QUEUED, &m);
  st.msg_held(st.arg, S("c"), 2, CM_MQTT_HELD_QUEUED, &m);
  cm_persist_close(p);
  off_t size = file_size(path);
  /* a torn last record: dropped, the rest kept */
  assert_int_equal(truncate(path, size - 3), 0);
  p = open_store(CM_FSYNC_ALWAYS);
  assert_int_equal(cm_persist_count_held(p, S("c")), 1);
  cm_persist_close(p);
  /* a flipped byte inside a record: the rest dropped, the file kept as .bad */
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  off_t end = lseek(fd, 0, SEEK_END);
  uint8_t byte;
  assert_int_equal(pread(fd, &byte, 1, end - 2), 1);
  byte ^= 0x40;
  assert_int_equal(pwrite(fd, &byte, 1, end - 2), 1);
  close(fd);
  p = open_store(CM_FSYNC_ALWAYS);
  /* (the snapshot ends with the held message's state record: that one is
   * lost, the message itself is kept) */
  assert_int_equal(cm_persist_count_held(p, S("c")), 1);
  assert_int_equal(cm_persist_count_sessions(p), 1);
  cm_persist_close(p);
  char bad[160];
  snprintf(bad, sizeof(bad), "%s.bad", path);
  assert_int_equal(file_size(bad), end);
  /* not our file: refused */
  fd = open(path, O_WRONLY | O_TRUNC);
  assert_int_equal(write(fd, "hello world", 11), 11);
  close(fd);
  char err[CM_OPS_ERR_LEN];
  assert_null(cm_persist_open(path, CM_FSYNC_ALWAYS, 0, err, sizeof(err)));
  assert_non_null(strstr(err, "not a cymongoose persistence file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(codec_round_trip),
      cmocka_unit_test(codec_rejects),
      cmocka_unit_test_setup_teardown(survives_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(compaction_shrinks, setup, teardown),
      cmocka_unit_test_setup_teardown(torn_tail_and_corruption, setup, teardown),
  };
  return cmocka_run_group_tests_name("mqtt_persist", tests, NULL, NULL);
}
