/* Echo load generator: N connections, each keeps one message in flight
 * (send M bytes, wait for M bytes back, repeat) for S seconds.  Plain epoll,
 * independent of the library under test.
 * Usage: echo_load PORT [connections=50] [size=64] [seconds=5]
 * Prints: messages=<count> seconds=<elapsed> */
#include "pingpong.h"

int main(int argc, char **argv) {
  struct pingpong_args a;
  if (pingpong_parse(argc, argv, &a) != 0) return 2;
  char *msg = malloc(a.size);
  memset(msg, 'm', a.size);
  return pingpong(a.port, a.nconns, msg, a.size, a.size, a.secs, NULL);
}
