/* Echo load generator: N connections, each keeps one message in flight
 * (send M bytes, wait for M bytes back, repeat) for S seconds.  Plain epoll,
 * independent of the library under test.
 * Usage: echo_load PORT [connections=50] [size=64] [seconds=5]
 * Prints: messages=<count> seconds=<elapsed> */
#include "pingpong.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [conns] [size] [seconds]\n", argv[0]);
    return 2;
  }
  int nconns = argc > 2 ? atoi(argv[2]) : 50;
  size_t size = argc > 3 ? (size_t)atoi(argv[3]) : 64;
  double secs = argc > 4 ? atof(argv[4]) : 5.0;
  char *msg = malloc(size);
  memset(msg, 'm', size);
  return pingpong(atoi(argv[1]), nconns, msg, size, size, secs, NULL);
}
