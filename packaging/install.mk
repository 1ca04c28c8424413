# SPDX-License-Identifier: GPL-2.0-only
# Install layout, included by the top-level Makefile.
#
#   make install [PREFIX=/usr/local] [DESTDIR=...]   libmapwatch (and
#        libmapwatch-verbs when lib.mk builds it), headers (the ABI headers
#        kdreg2.h and mapwatch_uapi.h in INCLUDEDIR/mapwatch/, where they
#        cannot clash with HPE's kdreg2 package), mapwatch.pc
#        (mapwatch-verbs.pc), man pages, examples, tools, udev rule,
#        modules-load.d file
#   make uninstall [same variables]                   removes exactly those
#   make dkms-src [DESTDIR=...]      the DKMS source tree, /usr/src/mapwatch-VERSION
#   make dkms-install                dkms-src, then dkms add, build, install
#                                    for the running kernel (DKMS_KVER=...)
#   make dkms-uninstall              dkms remove, and the source tree
#   make deb                         .debs under build/deb/ (dpkg-buildpackage)
#
# Directories (override any): BINDIR LIBDIR INCLUDEDIR MANDIR PKGCONFIGDIR
# DOCDIR UDEVRULESDIR MODULESLOADDIR.  udev and systemd only read their own
# directories, so for a PREFIX other than /usr the rule and the
# modules-load.d file go to /etc.  The device mode and group of the udev
# rule: MAPWATCH_DEV_MODE (0666), MAPWATCH_DEV_GROUP (root).
# The release version is the module's MODULE_VERSION.

mapwatch_install_goal := $(.DEFAULT_GOAL)

MAPWATCH_VERSION := $(shell sed -n 's/^MODULE_VERSION("\(.*\)");$$/\1/p' module/main.c)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DOCDIR ?= $(PREFIX)/share/doc/mapwatch
ifeq ($(PREFIX),/usr)
UDEVRULESDIR ?= /usr/lib/udev/rules.d
MODULESLOADDIR ?= /usr/lib/modules-load.d
else
UDEVRULESDIR ?= /etc/udev/rules.d
MODULESLOADDIR ?= /etc/modules-load.d
endif
MAPWATCH_DEV_MODE ?= 0666
MAPWATCH_DEV_GROUP ?= root
INSTALL ?= install

# What gets installed, by source -> destination directory.
INST_ABI_HEADERS := include/kdreg2.h include/mapwatch_uapi.h
INST_HEADERS := $(filter-out $(INST_ABI_HEADERS),$(sort $(wildcard include/*.h)))
INST_MAN := $(sort $(wildcard man/*.[1-8]))
INST_TOOLS := build/tools/mapwatch build/tools/mapwatch-bw
INST_EXAMPLES := $(sort $(wildcard examples/*.c) $(wildcard examples/Makefile))
INST_SONAME := libmapwatch.so.1
INST_SOREAL := $(INST_SONAME).0
PKG_DIR := build/packaging
PKG_GEN := $(PKG_DIR)/mapwatch.pc $(PKG_DIR)/60-mapwatch.rules
# libmapwatch-verbs, when lib/lib.mk builds it (libibverbs installed).
ifneq ($(MAPWATCH_VERBS_SO),)
INST_VERBS_SONAME := libmapwatch-verbs.so.1
INST_VERBS_SOREAL := $(INST_VERBS_SONAME).0
INST_VERBS := $(INST_VERBS_SOREAL) $(INST_VERBS_SONAME) libmapwatch-verbs.so libmapwatch-verbs.a
PKG_GEN += $(PKG_DIR)/mapwatch-verbs.pc
endif

# Every file and link `make install` creates (uninstall removes these).
INSTALLED := \
	$(addprefix $(LIBDIR)/,$(INST_SOREAL) $(INST_SONAME) libmapwatch.so libmapwatch.a) \
	$(addprefix $(LIBDIR)/,$(INST_VERBS)) \
	$(if $(INST_VERBS),$(PKGCONFIGDIR)/mapwatch-verbs.pc) \
	$(addprefix $(INCLUDEDIR)/,$(notdir $(INST_HEADERS))) \
	$(addprefix $(INCLUDEDIR)/mapwatch/,$(notdir $(INST_ABI_HEADERS))) \
	$(PKGCONFIGDIR)/mapwatch.pc \
	$(foreach m,$(INST_MAN),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
	$(addprefix $(BINDIR)/,$(notdir $(INST_TOOLS))) \
	$(addprefix $(DOCDIR)/examples/,$(notdir $(INST_EXAMPLES))) \
	$(UDEVRULESDIR)/60-mapwatch.rules \
	$(MODULESLOADDIR)/mapwatch.conf

.PHONY: install uninstall install-files dkms-src dkms-install dkms-uninstall deb

$(filter %.pc,$(PKG_GEN)): $(PKG_DIR)/%.pc: packaging/%.pc.in module/main.c
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(MAPWATCH_VERSION)|' $< > $@
$(PKG_DIR)/60-mapwatch.rules: packaging/60-mapwatch.rules
	@mkdir -p $(dir $@)
	sed -e 's|@MODE@|$(MAPWATCH_DEV_MODE)|' -e 's|@GROUP@|$(MAPWATCH_DEV_GROUP)|' $< > $@
# The generated files depend on the directory variables: always regenerate.
.PHONY: $(PKG_GEN)

install: lib tools $(PKG_GEN)
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/mapwatch \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(MODULESLOADDIR)
	$(INSTALL) -m 0755 build/lib/$(INST_SOREAL) $(DESTDIR)$(LIBDIR)/
	ln -sfn $(INST_SOREAL) $(DESTDIR)$(LIBDIR)/$(INST_SONAME)
	ln -sfn $(INST_SONAME) $(DESTDIR)$(LIBDIR)/libmapwatch.so
	$(INSTALL) -m 0644 build/lib/libmapwatch.a $(DESTDIR)$(LIBDIR)/
ifneq ($(INST_VERBS),)
	$(INSTALL) -m 0755 build/lib/$(INST_VERBS_SOREAL) $(DESTDIR)$(LIBDIR)/
	ln -sfn $(INST_VERBS_SOREAL) $(DESTDIR)$(LIBDIR)/$(INST_VERBS_SONAME)
	ln -sfn $(INST_VERBS_SONAME) $(DESTDIR)$(LIBDIR)/libmapwatch-verbs.so
	$(INSTALL) -m 0644 build/lib/libmapwatch-verbs.a $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 0644 $(PKG_DIR)/mapwatch-verbs.pc $(DESTDIR)$(PKGCONFIGDIR)/
endif
	$(INSTALL) -m 0644 $(INST_HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 0644 $(INST_ABI_HEADERS) $(DESTDIR)$(INCLUDEDIR)/mapwatch/
	$(INSTALL) -m 0644 $(PKG_DIR)/mapwatch.pc $(DESTDIR)$(PKGCONFIGDIR)/
	set -e; for s in $(sort $(subst .,,$(suffix $(INST_MAN)))); do \
		$(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$s; \
		$(INSTALL) -m 0644 man/*.$$s $(DESTDIR)$(MANDIR)/man$$s/; \
	done
	$(INSTALL) -m 0755 $(INST_TOOLS) $(DESTDIR)$(BINDIR)/
	$(if $(INST_EXAMPLES),$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples)
	$(if $(INST_EXAMPLES),$(INSTALL) -m 0644 $(INST_EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/)
	$(INSTALL) -m 0644 $(PKG_DIR)/60-mapwatch.rules $(DESTDIR)$(UDEVRULESDIR)/
	$(INSTALL) -m 0644 packaging/modules-load.conf $(DESTDIR)$(MODULESLOADDIR)/mapwatch.conf
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
		ldconfig || true; \
		udevadm control --reload 2>/dev/null || true; \
	fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(INCLUDEDIR)/mapwatch 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig || true; fi

# The DKMS source tree: module/'s sources and Kbuild, the two ABI headers
# in include/ (reached as $(src)/include), and dkms.conf.
DKMS_SRC_ROOT ?= /usr/src
DKMS_SRC = $(DESTDIR)$(DKMS_SRC_ROOT)/mapwatch-$(MAPWATCH_VERSION)
DKMS ?= dkms
DKMS_KVER ?= $(shell uname -r)
DKMS_FLAGS ?=
DKMS_STEPS ?= add build install

dkms-src:
	rm -rf $(DKMS_SRC)
	$(INSTALL) -d $(DKMS_SRC)/include $(DKMS_SRC)/probes
	$(INSTALL) -m 0644 module/Kbuild $(wildcard module/*.c module/*.h) $(DKMS_SRC)/
	$(INSTALL) -m 0644 $(wildcard module/probes/*.c) $(DKMS_SRC)/probes/
	$(INSTALL) -m 0755 module/probes/run $(DKMS_SRC)/probes/
	$(INSTALL) -m 0644 include/kdreg2.h include/mapwatch_uapi.h $(DKMS_SRC)/include/
	sed 's|#MODULE_VERSION#|$(MAPWATCH_VERSION)|' packaging/dkms.conf > $(DKMS_SRC)/dkms.conf

dkms-install: DESTDIR :=
dkms-install: dkms-src
	@if $(DKMS) status $(DKMS_FLAGS) -m mapwatch -v $(MAPWATCH_VERSION) 2>/dev/null | grep -q .; then \
		echo "$(DKMS) remove mapwatch/$(MAPWATCH_VERSION) --all"; \
		$(DKMS) remove $(DKMS_FLAGS) -m mapwatch -v $(MAPWATCH_VERSION) --all; \
	fi
	set -e; for step in $(DKMS_STEPS); do \
		case $$step in add) k= ;; *) k="-k $(DKMS_KVER)" ;; esac; \
		echo "$(DKMS) $$step mapwatch/$(MAPWATCH_VERSION) $$k"; \
		$(DKMS) $$step $(DKMS_FLAGS) --sourcetree $(DKMS_SRC_ROOT) \
			-m mapwatch -v $(MAPWATCH_VERSION) $$k; \
	done

dkms-uninstall:
	-$(DKMS) remove $(DKMS_FLAGS) -m mapwatch -v $(MAPWATCH_VERSION) --all
	rm -rf $(DESTDIR)$(DKMS_SRC_ROOT)/mapwatch-$(MAPWATCH_VERSION)

# The .debs, built in a copy of the tree so that dpkg-buildpackage's output
# (written to the parent directory) lands in build/deb/.
DEB_DIR := build/deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/mapwatch-$(MAPWATCH_VERSION)
	tar -c --exclude=./build --exclude=./.git --exclude=./.cache . | \
		tar -x -C $(DEB_DIR)/mapwatch-$(MAPWATCH_VERSION)
	cd $(DEB_DIR)/mapwatch-$(MAPWATCH_VERSION) && dpkg-buildpackage -us -uc -b
	@ls -1 $(DEB_DIR)/*.deb

.DEFAULT_GOAL := $(mapwatch_install_goal)
