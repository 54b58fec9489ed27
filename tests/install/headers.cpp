// The public headers compile cleanly as C++ (-Wall -Wextra -pedantic), and
// their declarations have C linkage: this links against the C library.
#include <cymongoose.h>

int main() {
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  cm_mgr_poll(&mgr, 0);
  cm_mgr_free(&mgr);
  return cm_url_port("http://127.0.0.1:8080/") == 8080 ? 0 : 1;
}
