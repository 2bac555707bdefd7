# msync — hand-written Makefile.  See CONTRIBUTING.md.
#
#   make              build ./msync
#   make check        install missing test dependencies, unit + integration tests
#   make check SAN=1  the same under ASan+UBSan
#   make demo         build, then sync the bundled example (examples/)
#   make install      PREFIX=/usr/local DESTDIR=  (binary, man pages,
#                     bash/zsh completion, systemd user units)
#   make uninstall    the same PREFIX and DESTDIR: removes exactly those

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
# The daemon's systemd units (contrib/systemd/), with ExecStart's path set.
UNITDIR	?= $(PREFIX)/lib/systemd/system
UNITS	 = msyncd.socket msyncd@.service msyncd.service
# Where Debian's bash-completion, zsh and systemd look for them.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions
SYSTEMDUSERDIR ?= $(PREFIX)/lib/systemd/user
# systemd user units (templates); @BINDIR@ becomes $(BINDIR).
SYSTEMD_UNITS = contrib/systemd/msync@.service contrib/systemd/msync@.timer \
	   contrib/systemd/msync-watch@.service
CC	?= cc
PKG_CONFIG ?= pkg-config
PKGS	 = libssh liblz4 libxxhash openssl zlib
# Linked: all but libssh and OpenSSL, which are loaded (dlopen) only by
# a run that uses them: libssh by remote/libssh.c for --ssh=libssh,
# libcrypto and libssl by src/ossl.c for TLS (imaps://, STARTTLS,
# msyncs://, the daemon).  So the server and the client over the ssh
# program do not pay their dynamic linking at every start (libcrypto's
# alone was 2.6 M instructions, and libssh's Kerberos libraries more);
# their headers are still needed to build.  dlopen is in glibc's libc
# since 2.34: no -ldl.
LINK_PKGS = zlib liblz4 libxxhash

WARN	 = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter
CFLAGS	?= -O2 -g
# Our own flags go in MSYNC_CFLAGS so that `make CFLAGS=...` keeps them.
MSYNC_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Isrc -Iremote
ifeq ($(WERROR),1)
MSYNC_CFLAGS += -Werror
endif
ifeq ($(SAN),1)
MSYNC_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif
# pkg-config is asked when a recipe first needs its answer, not when the
# Makefile is read: on a fresh machine `make demo` installs the libraries
# (scripts/deps.sh) after parsing, and an answer read at parse time would
# be empty.  $(call lazy,VAR,CMD) runs CMD once, on first use, and keeps
# the result in VAR.
lazy = $(eval $(1) := $$(shell $(2)))$($(1))
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,$(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(call lazy,PKG_LIBS,$(PKG_CONFIG) --libs $(LINK_PKGS) 2>/dev/null)
CMOCKA_LIBS = $(call lazy,CMOCKA_LIBS,$(PKG_CONFIG) --libs cmocka 2>/dev/null)
MSYNC_CFLAGS += $(PKG_CFLAGS)

%.o: %.c
	$(CC) $(MSYNC_CFLAGS) $(CFLAGS) -c -o $@ $<

# Every source file but main.c (src/*.c, the stores in src/store/, and
# remote/) goes into libmsync.a, which the unit tests
# and fuzzers link against too.
LIB_SRCS = $(sort $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c)) \
	   $(wildcard remote/*.c))
LIB_OBJS = $(LIB_SRCS:.c=.o)
UNIT_SRCS = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS = $(UNIT_SRCS:.c=)

all: msync

msync: src/main.o libmsync.a
	$(CC) $(LDFLAGS) -o $@ src/main.o libmsync.a $(PKG_LIBS)

libmsync.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

tests/unit/test_%: tests/unit/test_%.o libmsync.a
	$(CC) $(LDFLAGS) -o $@ $< libmsync.a $(PKG_LIBS) $(CMOCKA_LIBS)

deps:
	sh scripts/deps.sh

check: deps
	$(MAKE) msync $(UNIT_BINS)
	bash tests/check.sh $(UNIT_BINS)

check-unit: msync $(UNIT_BINS)
	sh tests/run-unit.sh $(UNIT_BINS)

check-integration: msync
	sh tests/integration/run.sh

# Targets that install the dependencies build in a sub-make started after
# deps, so that (also with -j) nothing compiles before the libraries are
# installed.
demo: deps
	$(MAKE) msync
	sh scripts/demo.sh

fuzz:
	$(MAKE) -C tests/fuzz

bench: deps
	$(MAKE) msync
	sh scripts/bench.sh

lint:
	sh scripts/lint-man.sh man/msync.1 man/msync.5

install: msync
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) \
	    $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(SYSTEMDUSERDIR)
	install -m 755 msync $(DESTDIR)$(BINDIR)/msync
	install -m 644 man/msync.1 $(DESTDIR)$(MANDIR)/man1/msync.1
	install -m 644 man/msync.5 $(DESTDIR)$(MANDIR)/man5/msync.5
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
	    sed 's|/usr/local/bin/msync|$(BINDIR)/msync|' contrib/systemd/$$u \
	    >$(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 644 contrib/completion/msync.bash \
	    $(DESTDIR)$(BASHCOMPDIR)/msync
	install -m 644 contrib/completion/_msync $(DESTDIR)$(ZSHCOMPDIR)/_msync
	for u in $(SYSTEMD_UNITS); do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u \
		    >$(DESTDIR)$(SYSTEMDUSERDIR)/$${u##*/}.tmp && \
		chmod 644 $(DESTDIR)$(SYSTEMDUSERDIR)/$${u##*/}.tmp && \
		mv $(DESTDIR)$(SYSTEMDUSERDIR)/$${u##*/}.tmp \
		    $(DESTDIR)$(SYSTEMDUSERDIR)/$${u##*/} || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/msync $(DESTDIR)$(MANDIR)/man1/msync.1 \
	    $(DESTDIR)$(MANDIR)/man5/msync.5 $(DESTDIR)$(BASHCOMPDIR)/msync \
	    $(DESTDIR)$(ZSHCOMPDIR)/_msync
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	for u in $(SYSTEMD_UNITS); do \
		rm -f $(DESTDIR)$(SYSTEMDUSERDIR)/$${u##*/} || exit 1; \
	done

clean:
	rm -rf tests/integration/trash
	rm -f msync libmsync.a src/*.o src/*.d src/*/*.o src/*/*.d \
	    remote/*.o remote/*.d \
	    tests/unit/*.o tests/unit/*.d $(UNIT_BINS)
	$(MAKE) -C tests/fuzz clean 2>/dev/null || true

.PHONY: all deps check check-unit check-integration demo fuzz bench lint \
	install uninstall clean
.SECONDARY:

-include $(wildcard src/*.d src/*/*.d remote/*.d tests/unit/*.d)
