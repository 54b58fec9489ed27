# cymongoose: build, test, fuzz, bench, install.
# `make run`, `make test` and `make bench` install what they miss first
# (scripts/deps.sh run|test|bench: the demo needs far less than the tests).

PY      ?= /usr/bin/python3
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_TIME ?= 20

WARN    := -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -Iinclude -Isrc $(WARN) $(CFLAGS)
LIBS    := -lssl -lcrypto -lcares -lz -lpthread

SRCS    := $(sort $(wildcard src/*/*.c))
HDRS    := $(wildcard include/*.h include/*/*.h src/*/*.h)
OBJS    := $(SRCS:%.c=$(BUILD)/obj/%.o)
TESTS   := $(sort $(wildcard tests/c/test_*.c))
TEST_BINS := $(TESTS:tests/c/%.c=$(BUILD)/tests/%)
FUZZERS := $(sort $(wildcard fuzz/fuzz_*.c))
PYSRCS  := $(wildcard python/src/*.c python/src/*.h)
EXAMPLES := $(patsubst examples/c/%.c,$(BUILD)/examples/%,$(wildcard examples/c/*.c))
BENCH_TOOLS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
BENCH_SERVERS := $(patsubst bench/c/%.c,$(BUILD)/bench/c/%,$(wildcard bench/c/*.c))

.PHONY: all lib examples deps deps-run deps-bench docs test-docs run test test-c test-install test-python-asan test-asan test-python python fuzz bench install clean

all: lib examples

examples: $(EXAMPLES)

$(BUILD)/examples/%: examples/c/%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BUILD)/libcymongoose.a $(LIBS)

# Load generators are plain C, independent of the library under test.
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror $< -o $@

# Servers under test in C, built on the library.
$(BUILD)/bench/c/%: bench/c/%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BUILD)/libcymongoose.a $(LIBS)

deps:
	@bash scripts/deps.sh test

deps-run:
	@bash scripts/deps.sh run

deps-bench:
	@bash scripts/deps.sh bench

lib: $(BUILD)/libcymongoose.a $(BUILD)/libcymongoose.so $(BUILD)/cymongoose.pc

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libcymongoose.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libcymongoose.so: $(OBJS)
	$(CC) -shared -o $@ $^ $(LIBS)

VERSION := $(shell sed -n 's/^\#define CM_VERSION "\(.*\)"/\1/p' include/cymongoose.h)

# Regenerated every time: it depends on PREFIX, which make cannot track.
$(BUILD)/cymongoose.pc: cymongoose.pc.in FORCE
	@mkdir -p $(BUILD)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

FORCE:

$(BUILD)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/c $< -o $@ $(BUILD)/libcymongoose.a -lcmocka $(LIBS)

# ---------------------------------------------------------------- tests
test: deps
	@$(MAKE) --no-print-directory test-c
	@$(MAKE) --no-print-directory test-install
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=2
	@$(MAKE) --no-print-directory test-python-asan
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory test-docs

test-c: $(TEST_BINS) $(EXAMPLES)
	@bash scripts/run-c-tests.sh $(TEST_BINS)

# The same C tests, built in their own tree with ASan and UBSan.
test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  test-c

python: python/cymongoose/.built

python/cymongoose/.built: $(SRCS) $(HDRS) $(PYSRCS) setup.py
	$(PY) setup.py -q build_ext --inplace -j $(JOBS)
	@touch $@

# The pytest suite against an ASan+UBSan build of the extension (scratch tree).
test-python-asan:
	@PY=$(PY) bash scripts/python-asan.sh

test-python: python
	cd tests/python && PYTHONPATH=$(CURDIR)/python $(PY) -m pytest -q -p no:cacheprovider

# ----------------------------------------------------------------- demo
PORT ?= 8000
run: deps-run python
	@PYTHONPATH=$(CURDIR)/python $(PY) examples/python/demo_server.py --port $(PORT)

# ----------------------------------------------------------------- docs
# An HTML site from docs/ (mkdocs.yml) in $(BUILD)/site.  --strict turns a
# link to a missing page into an error; check-site-links.py also checks anchors.
docs:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory test-docs

test-docs:
	@mkdocs build --strict --quiet --site-dir $(BUILD)/site
	@$(PY) scripts/check-site-links.py $(BUILD)/site
	@echo "docs: $(BUILD)/site/index.html built, no broken internal link"

# ---------------------------------------------------------------- fuzz
# Each harness runs FUZZ_TIME seconds with ASan and UBSan.
fuzz: deps
	@bash scripts/run-fuzzers.sh $(FUZZ_TIME) $(FUZZERS)

# ---------------------------------------------------------------- bench
bench: deps-bench lib examples python $(BENCH_TOOLS) $(BENCH_SERVERS)
	@PYTHONPATH=$(CURDIR)/python $(PY) bench/bench.py $(BENCH_ARGS)

# -------------------------------------------------------------- install
install: lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/cymongoose
	install -m 644 $(BUILD)/libcymongoose.a $(BUILD)/libcymongoose.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/cymongoose.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 include/cymongoose.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/cymongoose/*.h $(DESTDIR)$(PREFIX)/include/cymongoose/

# Installs into a scratch DESTDIR and builds an example against it with pkg-config.
test-install:
	@rm -rf $(BUILD)/stage
	@$(MAKE) --no-print-directory -s install DESTDIR=$(CURDIR)/$(BUILD)/stage PREFIX=/usr/local
	@PKG_CONFIG_SYSROOT_DIR=$(CURDIR)/$(BUILD)/stage \
	  PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/stage/usr/local/lib/pkgconfig \
	  $(CC) examples/c/echo_server.c -o $(BUILD)/stage/echo_server \
	  $$(PKG_CONFIG_SYSROOT_DIR=$(CURDIR)/$(BUILD)/stage PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/stage/usr/local/lib/pkgconfig pkg-config --cflags --libs --static cymongoose)
	@echo "install: headers, static and shared library and cymongoose.pc build a program"

clean:
	rm -rf build build-asan build-fuzz python/build python/cymongoose/*.so python/cymongoose/.built
