/* Unit tests of struct cm_buf. */
#include "testutil.h"

static void append_consume_keeps_order(void **state) {
  (void)state;
  struct cm_buf b = {0};
  for (int i = 0; i < 10000; i++) {
    uint8_t x = (uint8_t)i;
    assert_int_equal(cm_buf_append(&b, &x, 1), 0);
    if (i % 3 == 2) cm_buf_consume(&b, 2);
  }
  /* 10000 appended, 3333 * 2 consumed */
  assert_int_equal(b.len, 10000 - 6666);
  assert_int_equal(cm_buf_data(&b)[0], (uint8_t)6666);
  cm_buf_free(&b);
  assert_null(b.ptr);
  assert_int_equal(b.len, 0);
}

static void consume_more_than_len_empties(void **state) {
  (void)state;
  struct cm_buf b = {0};
  assert_int_equal(cm_buf_append(&b, "hello", 5), 0);
  cm_buf_consume(&b, 100);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.off, 0);
  cm_buf_free(&b);
}

static void delete_middle(void **state) {
  (void)state;
  struct cm_buf b = {0};
  assert_int_equal(cm_buf_append(&b, "abcdef", 6), 0);
  cm_buf_consume(&b, 1);
  cm_buf_delete(&b, 1, 2);
  assert_int_equal(b.len, 3);
  assert_memory_equal(cm_buf_data(&b), "bef", 3);
  cm_buf_delete(&b, 2, 100);
  assert_int_equal(b.len, 2);
  cm_buf_free(&b);
}

static void reserve_compacts_before_growing(void **state) {
  (void)state;
  struct cm_buf b = {0};
  char chunk[200];
  memset(chunk, 'x', sizeof(chunk));
  assert_int_equal(cm_buf_append(&b, chunk, sizeof(chunk)), 0);
  size_t cap = b.cap;
  cm_buf_consume(&b, 150);
  assert_int_equal(cm_buf_append(&b, chunk, 100), 0);
  assert_int_equal(b.cap, cap);
  assert_int_equal(b.off, 0);
  assert_int_equal(b.len, 150);
  cm_buf_free(&b);
}

static void reserve_rejects_overflow(void **state) {
  (void)state;
  struct cm_buf b = {0};
  assert_int_equal(cm_buf_append(&b, "a", 1), 0);
  assert_int_equal(cm_buf_reserve(&b, SIZE_MAX), CM_ENOMEM);
  assert_int_equal(b.len, 1);
  cm_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(append_consume_keeps_order),
      cmocka_unit_test(consume_more_than_len_empties),
      cmocka_unit_test(delete_middle),
      cmocka_unit_test(reserve_compacts_before_growing),
      cmocka_unit_test(reserve_rejects_overflow),
  };
  return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
