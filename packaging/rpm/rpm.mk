# SPDX-License-Identifier: GPL-2.0-only
# RPM packages, included by the top-level Makefile (packaging/rpm/README.md).
#
#   make rpm      the source RPM and the binary RPMs of packaging/rpm/mapwatch.spec
#                 under build/rpm/ (SRPMS/, RPMS/ARCH/, RPMS/noarch/), with
#                 rpmbuild; on Debian, `apt-get install rpm` (make deps does)
#
# The spec is written to build/rpm/SPECS/ with the release version
# (MAPWATCH_VERSION, install.mk: module/main.c's MODULE_VERSION) and the
# date of debian/changelog's newest entry filled in; the source tarball is
# the tree as it is (as `make deb` takes it), without build/ and .git.
# --nodeps: rpmbuild checks BuildRequires against the RPM database, which
# on Debian is empty (the build dependencies are Debian packages).

RPM_TOP := $(CURDIR)/build/rpm
RPMBUILD ?= rpmbuild
# On Debian: packaging/rpm/debian.macros (why: in that file).
RPM_DEFINES ?= $(if $(wildcard /etc/debian_version),--load packaging/rpm/debian.macros)
RPM_DATE = $(shell LC_ALL=C date -u -d "$$(dpkg-parsechangelog -S Date 2>/dev/null || date -R)" '+%a %b %d %Y')

.PHONY: rpm
rpm:
	rm -rf $(RPM_TOP)
	mkdir -p $(RPM_TOP)/SOURCES $(RPM_TOP)/SPECS
	sed -e 's|@VERSION@|$(MAPWATCH_VERSION)|g' -e 's|@DATE@|$(RPM_DATE)|g' \
		packaging/rpm/mapwatch.spec > $(RPM_TOP)/SPECS/mapwatch.spec
	tar -c --exclude=./build --exclude=./.git --exclude=./.cache \
		--transform 's|^\.|mapwatch-$(MAPWATCH_VERSION)|' . | \
		gzip -n > $(RPM_TOP)/SOURCES/mapwatch-$(MAPWATCH_VERSION).tar.gz
	$(RPMBUILD) -ba --nodeps --define '_topdir $(RPM_TOP)' $(RPM_DEFINES) $(RPM_TOP)/SPECS/mapwatch.spec
	@cd $(RPM_TOP) && ls -1 SRPMS/*.rpm RPMS/*/*.rpm
