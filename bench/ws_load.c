/* WebSocket echo load generator: N connections, each keeps one message in
 * flight (send a masked binary frame of M bytes, wait for the whole echo,
 * repeat) for S seconds.  Plain sockets and epoll, independent of the
 * library under test.  The mask key is fixed and the frame pre-masked: the
 * server's work (unmasking) is the same, the generator's is less.
 * Usage: ws_load PORT [connections=50] [size=64] [seconds=5]
 * Prints: messages=<count> seconds=<elapsed> */
#include "pingpong.h"

static size_t header_len(size_t n, int masked) {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/* A masked binary frame of size bytes. */
static unsigned char *make_frame(size_t size, size_t *len) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = header_len(size, 1);
  unsigned char *f = malloc(h + size);
  f[0] = 0x82;
  if (size < 126) {
    f[1] = (unsigned char)(0x80 | size);
  } else if (size < 65536) {
    f[1] = 0x80 | 126;
    f[2] = (unsigned char)(size >> 8);
    f[3] = (unsigned char)size;
  } else {
    f[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) f[2 + i] = (unsigned char)((unsigned long long)size >> (56 - 8 * i));
  }
  memcpy(f + h - 4, key, 4);
  for (size_t i = 0; i < size; i++) f[h + i] = (unsigned char)('m' ^ key[i & 3]);
  *len = h + size;
  return f;
}

static int handshake(int fd) {
  static const char req[] =
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) return -1;
  char buf[1024];
  size_t got = 0;
  /* Read byte by byte up to the blank line, so no frame byte is eaten. */
  while (got < sizeof(buf) - 1) {
    if (read(fd, buf + got, 1) != 1) return -1;
    got++;
    if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[got] = '\0';
  return strncmp(buf, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  struct pingpong_args a;
  if (pingpong_parse(argc, argv, &a) != 0) return 2;
  size_t flen, want = header_len(a.size, 0) + a.size; /* the echo comes unmasked */
  unsigned char *msg = make_frame(a.size, &flen);
  return pingpong(a.port, a.nconns, msg, flen, want, a.secs, handshake);
}
