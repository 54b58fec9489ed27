# cymongoose: build, test, fuzz, bench, install.
# `make run`, `make test` and `make bench` install what they miss first
# (scripts/deps.sh run|test|bench: the demo needs far less than the tests).

PY      ?= /usr/bin/python3
CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_TIME ?= 20

DEPFLAGS = -MMD -MP -MF $(basename $@).d

WARN    := -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -Iinclude -Isrc $(WARN) $(CFLAGS)
LIBS    := -lssl -lcrypto -lcares -lz -lpthread

VERSION := $(shell sed -n 's/^\#define CM_VERSION "\(.*\)"/\1/p' include/cymongoose.h)
SOVERSION := 0
SHLIB   := libcymongoose.so.$(VERSION)
SONAME  := libcymongoose.so.$(SOVERSION)

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
# Programs installed into PREFIX/bin (cymongoose-broker, cymongoose-passwd).
PROGRAMS := $(patsubst programs/%.c,$(BUILD)/%,$(wildcard programs/*.c))

# npm peers of the MQTT tests (aedes, ws, MQTT.js) in build/npm; idempotent.
.PHONY: npm-peers
npm-peers:
	@bash scripts/npm-peers.sh

.PHONY: all lib examples programs deps deps-run deps-bench docs test-docs run test test-c test-install test-python-asan test-asan test-python test-stubs soak python fuzz bench install clean

all: lib examples programs

programs: $(PROGRAMS)

$(BUILD)/cymongoose-%: programs/cymongoose-%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $< -o $@ $(BUILD)/libcymongoose.a $(LIBS)

examples: $(EXAMPLES)

$(BUILD)/examples/%: examples/c/%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $< -o $@ $(BUILD)/libcymongoose.a $(LIBS)

# Load generators are plain C, independent of the library under test.
$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror $< -o $@

# Servers under test in C, built on the library.
$(BUILD)/bench/c/%: bench/c/%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $< -o $@ $(BUILD)/libcymongoose.a $(LIBS)

deps:
	@bash scripts/deps.sh test

deps-run:
	@bash scripts/deps.sh run

deps-bench:
	@bash scripts/deps.sh bench

lib: $(BUILD)/libcymongoose.a $(BUILD)/libcymongoose.so $(BUILD)/cymongoose.pc \
     $(BUILD)/cymongooseConfig.cmake $(BUILD)/cymongooseConfigVersion.cmake

# The library's own objects hide every symbol that the public headers do not
# declare (they wrap their declarations in visibility push(default)).
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden $(DEPFLAGS) -c $< -o $@

$(BUILD)/libcymongoose.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SHLIB): $(OBJS)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIBS)

$(BUILD)/libcymongoose.so: $(BUILD)/$(SHLIB)
	ln -sf $(SHLIB) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

# Regenerated every time: it depends on PREFIX, which make cannot track.
$(BUILD)/cymongoose.pc: cymongoose.pc.in FORCE
	@mkdir -p $(BUILD)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/%.cmake: cmake/%.cmake.in include/cymongoose.h
	@mkdir -p $(BUILD)
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@SOVERSION@|$(SOVERSION)|' $< > $@

FORCE:

# The out-of-memory test fails chosen allocations of MQTT session state.
$(BUILD)/tests/test_mqtt_broker_oom: LIBS += -Wl,--wrap=cm__mqtt_session_new_server

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libcymongoose.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Itests/c $< -o $@ $(BUILD)/libcymongoose.a -lcmocka $(LIBS)

# Tests that run the programs.
$(BUILD)/tests/test_mqtt_passwd: $(BUILD)/cymongoose-passwd

# Header dependencies recorded by the compiler (-MMD): a changed header
# rebuilds exactly the objects and programs that include it.
-include $(OBJS:.o=.d) $(TEST_BINS:=.d) $(EXAMPLES:=.d) $(BENCH_SERVERS:=.d) $(PROGRAMS:=.d)

# ---------------------------------------------------------------- tests
# What both lanes share is built first, so the lanes never build one target
# at once; then scripts/test-lanes.sh runs the sanitizer phases (test-asan,
# test-python-asan) beside the others (test-c, test-install, fuzz,
# test-python, test-stubs, test-docs).
test: deps
	@$(MAKE) --no-print-directory -j $(JOBS) lib programs examples python npm-peers $(TEST_BINS)
	@MAKE="$(MAKE)" bash scripts/test-lanes.sh

test-c: $(TEST_BINS) $(EXAMPLES) $(PROGRAMS)
	@bash scripts/run-c-tests.sh $(TEST_BINS)

# The same C tests, built in their own tree with ASan and UBSan.
test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  test-c

python: python/cymongoose/.built

python/cymongoose/.built: $(SRCS) $(HDRS) $(PYSRCS) setup.py
	CFLAGS="-Werror" $(PY) setup.py -q build_ext --inplace -j $(JOBS)
	@touch $@

# The pytest suite against an ASan+UBSan build of the extension (scratch tree).
test-python-asan: npm-peers programs
	@PY=$(PY) bash scripts/python-asan.sh

test-python: python programs npm-peers
	cd tests/python && PYTHONPATH=$(CURDIR)/python $(PY) -m pytest -q -p no:cacheprovider

# The .pyi stubs match the runtime exactly: signatures (text signatures of
# the C functions), names, __all__; no allowlist.
test-stubs: python
	@mkdir -p $(BUILD)/stubtest   # mypy writes its cache (.mypy_cache) in the working directory
	cd $(BUILD)/stubtest && PYTHONPATH=$(CURDIR)/python $(PY) -m mypy.stubtest cymongoose

# The MQTT broker soak at full length (make test-python runs it for 10 s).
.PHONY: soak
soak: python
	cd tests/python && CM_SOAK_SECONDS=$${CM_SOAK_SECONDS:-60} PYTHONPATH=$(CURDIR)/python $(PY) -m pytest -q -p no:cacheprovider test_mqtt_broker_soak.py

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
# The versioned shared library with its soname and development links, the
# static library, headers, pkg-config file and CMake package config.  A real
# install (no DESTDIR) refreshes the loader cache so programs run at once.
install: lib programs
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/cymongoose \
	  $(DESTDIR)$(PREFIX)/lib/cmake/cymongoose
	install -m 644 $(BUILD)/libcymongoose.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/$(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf $(SHLIB) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libcymongoose.so
	install -m 644 $(BUILD)/cymongoose.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 $(BUILD)/cymongooseConfig.cmake $(BUILD)/cymongooseConfigVersion.cmake \
	  $(DESTDIR)$(PREFIX)/lib/cmake/cymongoose/
	install -m 644 include/cymongoose.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/cymongoose/*.h $(DESTDIR)$(PREFIX)/include/cymongoose/
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

# Installs into a scratch DESTDIR; programs build against it with pkg-config
# and CMake (shared, static, C++), and only cm_ symbols are exported.
test-install: lib
	@bash scripts/test-install.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz python/build python/cymongoose/*.so python/cymongoose/.built
