/* HTTP-date (RFC 9110 section 5.6.7): formatting, and parsing of the three
 * formats a recipient must accept. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void cm__http_date_fmt(int64_t t, char buf[32]) {
  time_t tt = (time_t) t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  snprintf(buf, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7], tm.tm_mday,
           months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Reads exactly `digits` digits (0 for "1 or 2"), advancing *p. */
static bool num(const char **p, const char *end, int digits, int *out) {
  int v = 0, k = 0, want = digits == 0 ? 2 : digits;
  while (k < want && *p < end && **p >= '0' && **p <= '9') v = v * 10 + (*(*p)++ - '0'), k++;
  *out = v;
  return digits == 0 ? k > 0 : k == digits;
}

static bool lit(const char **p, const char *end, const char *s) {
  size_t n = strlen(s);
  if ((size_t) (end - *p) < n || memcmp(*p, s, n) != 0) return false;
  *p += n;
  return true;
}

static int month(const char **p, const char *end) {
  for (int m = 0; m < 12; m++) {
    if (lit(p, end, months[m])) return m;
  }
  return -1;
}

static bool clock_(const char **p, const char *end, struct tm *tm) {
  return num(p, end, 2, &tm->tm_hour) && lit(p, end, ":") && num(p, end, 2, &tm->tm_min) &&
         lit(p, end, ":") && num(p, end, 2, &tm->tm_sec);
}

int64_t cm__http_date_parse(struct cm_str s) {
  const char *p = s.buf, *end = s.buf + s.len;
  if (p == NULL) return -1;
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  const char *comma = memchr(p, ',', s.len);
  bool ok;
  if (comma != NULL && comma - p == 3) { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    p = comma + 1;
    ok = lit(&p, end, " ") && num(&p, end, 2, &tm.tm_mday) && lit(&p, end, " ") &&
         (tm.tm_mon = month(&p, end)) >= 0 && lit(&p, end, " ") && num(&p, end, 4, &tm.tm_year) &&
         lit(&p, end, " ") && clock_(&p, end, &tm) && lit(&p, end, " GMT");
    tm.tm_year -= 1900;
  } else if (comma != NULL) { /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    p = comma + 1;
    ok = lit(&p, end, " ") && num(&p, end, 2, &tm.tm_mday) && lit(&p, end, "-") &&
         (tm.tm_mon = month(&p, end)) >= 0 && lit(&p, end, "-") && num(&p, end, 2, &tm.tm_year) &&
         lit(&p, end, " ") && clock_(&p, end, &tm) && lit(&p, end, " GMT");
    if (tm.tm_year < 70) tm.tm_year += 100; /* two-digit years: RFC 9110 says the nearest past century */
  } else { /* asctime-date: Sun Nov  6 08:49:37 1994 */
    ok = (size_t) (end - p) >= 4 && (p += 4, true) && (tm.tm_mon = month(&p, end)) >= 0 && lit(&p, end, " ");
    if (ok && p < end && *p == ' ') p++;
    ok = ok && num(&p, end, 0, &tm.tm_mday) && lit(&p, end, " ") && clock_(&p, end, &tm) &&
         lit(&p, end, " ") && num(&p, end, 4, &tm.tm_year);
    tm.tm_year -= 1900;
  }
  if (!ok || p != end || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return -1;
  }
  return (int64_t) timegm(&tm);
}
