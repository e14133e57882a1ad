# TcmuSharedVolume — every target installs what it needs on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := build

CONFIGURATION ?= Release
RID ?= linux-x64
OUT := out
BIN := $(OUT)/bin
DOTNET ?= dotnet
PREFIX ?= /usr/local

.PHONY: build publish test e2e demo demo-cluster demo-pacemaker bench bench-e2e bench-e2e-rbd package install uninstall clean deps-vm

build:
	$(DOTNET) build TcmuSharedVolume.sln -c $(CONFIGURATION)

# Self-contained single-file builds, precompiled (ReadyToRun) so that start-up does not wait on
# the JIT: the binaries the VM uses (where everything runs under software emulation).
PUBLISH_FLAGS := -c $(CONFIGURATION) -r $(RID) --self-contained -p:PublishSingleFile=true -p:PublishReadyToRun=true -o $(BIN)
publish:
	$(DOTNET) publish src/tcmu-shared-volume/tcmu-shared-volume.csproj $(PUBLISH_FLAGS)
	$(DOTNET) publish src/tsvctl/tsvctl.csproj $(PUBLISH_FLAGS)
	rm -f $(BIN)/*.pdb

# Native AOT binaries in $(OUT)/aot (what the packages ship); clang and zlib1g-dev come from
# scripts/deps-aot.sh. See scripts/publish-aot.sh for the net9.0 fallback of the daemon where
# NuGet lacks .NET 10's NativeAOT runtime pack.
.PHONY: publish-aot
publish-aot:
	CONFIGURATION=$(CONFIGURATION) RID=$(RID) DOTNET=$(DOTNET) scripts/publish-aot.sh

# The same binaries with their symbols, in out/aot-prof: what BENCH_DAEMON=prof BENCH_PERF=1
# tests/e2e/bench.sh profiles in the VM.
.PHONY: publish-aot-prof
publish-aot-prof:
	AOT_OUT=out/aot-prof AOT_SYMBOLS=1 CONFIGURATION=$(CONFIGURATION) RID=$(RID) DOTNET=$(DOTNET) scripts/publish-aot.sh

# All in-process tests (ring simulator, command set, reservations, control plane).
# The RBD tests start a one-node Ceph (scripts/ceph/start.sh); it is stopped by its PIDs afterwards.
test:
	$(DOTNET) test TcmuSharedVolume.sln -c $(CONFIGURATION) --logger "console;verbosity=normal"; \
		rc=$$?; WIPE=1 scripts/ceph/stop.sh; exit $$rc

# Tests against a real kernel in the QEMU VM (scripts/vm).
e2e: publish package
	scripts/vm/deps.sh
	tests/e2e/run-all.sh

demo: publish
	scripts/vm/deps.sh
	scripts/demo.sh

# The same failover across two target hosts of one Ceph RBD volume (two VMs, dm-multipath).
demo-cluster: publish
	scripts/vm/deps.sh
	scripts/vm/run tests/e2e/80-two-hosts-failover.sh

# A two-node Pacemaker cluster that fences through the target with fence_scsi (two VMs).
demo-pacemaker: publish
	scripts/vm/deps.sh
	scripts/vm/run tests/e2e/90-pacemaker.sh

bench:
	$(DOTNET) run -c Release --project tests/TcmuSharedVolume.Benchmarks -- --filter '*' $(BENCH_ARGS)

bench-e2e: publish
	scripts/vm/deps.sh
	tests/e2e/bench.sh

# This daemon's RBD volume against tcmu-runner's rbd handler, on one Ceph inside the same VM
# (docs/performance.md §8).
bench-e2e-rbd: publish
	scripts/vm/deps.sh
	BENCH_SUITE=rbd tests/e2e/bench.sh

# out/tcmu-shared-volume_<version>_amd64.deb from the AOT binaries, checked with lintian
# (packaging/README.md).
package: publish-aot
	packaging/build-deb.sh

# A plain install under $(PREFIX) (default /usr/local), from the same AOT binaries as the
# packages; DESTDIR stages it elsewhere. The unit goes to /etc/systemd/system (the admin's
# place) with ExecStart= pointing into $(PREFIX)/sbin; the D-Bus policy to /etc/dbus-1/system.d;
# the activation file to $(PREFIX)/share/dbus-1/system-services (the system bus searches
# /usr/local/share and /usr/share only); the configuration only if there is none yet.
# Nothing is enabled or started: `systemctl enable --now tcmu-shared-volume` does that.
SYSCONFDIR ?= /etc
UNITDIR ?= $(SYSCONFDIR)/systemd/system
DBUS_POLICYDIR ?= $(SYSCONFDIR)/dbus-1/system.d
DBUS_SERVICEDIR ?= $(PREFIX)/share/dbus-1/system-services
MANDIR ?= $(PREFIX)/share/man
AOT := $(OUT)/aot
install: publish-aot
	install -D -m 0755 $(AOT)/tcmu-shared-volume $(DESTDIR)$(PREFIX)/sbin/tcmu-shared-volume
	install -D -m 0755 $(AOT)/tsvctl $(DESTDIR)$(PREFIX)/sbin/tsvctl
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DBUS_POLICYDIR) $(DESTDIR)$(DBUS_SERVICEDIR) $(DESTDIR)$(MANDIR)/man8
	sed 's|^ExecStart=/usr/sbin/tcmu-shared-volume$$|ExecStart=$(PREFIX)/sbin/tcmu-shared-volume|' \
		systemd/tcmu-shared-volume.service >$(DESTDIR)$(UNITDIR)/tcmu-shared-volume.service
	grep -qx 'ExecStart=$(PREFIX)/sbin/tcmu-shared-volume' $(DESTDIR)$(UNITDIR)/tcmu-shared-volume.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tcmu-shared-volume.service
	install -m 0644 systemd/org.kernel.TCMUService1.conf $(DESTDIR)$(DBUS_POLICYDIR)/
	sed 's|^Exec=/usr/sbin/tcmu-shared-volume$$|Exec=$(PREFIX)/sbin/tcmu-shared-volume|' \
		systemd/org.kernel.TCMUService1.service >$(DESTDIR)$(DBUS_SERVICEDIR)/org.kernel.TCMUService1.service
	chmod 0644 $(DESTDIR)$(DBUS_SERVICEDIR)/org.kernel.TCMUService1.service
	install -m 0644 packaging/man/tcmu-shared-volume.8 packaging/man/tsvctl.8 $(DESTDIR)$(MANDIR)/man8/
	test -e $(DESTDIR)$(SYSCONFDIR)/tcmu-shared-volume/tcmu-shared-volume.conf || \
		install -D -m 0644 systemd/tcmu-shared-volume.conf $(DESTDIR)$(SYSCONFDIR)/tcmu-shared-volume/tcmu-shared-volume.conf
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# Removes what `make install` put there, after stopping the daemon. The configuration file and
# /var/lib/tcmu-shared-volume (the reservation tables) stay: delete them by hand if wanted.
uninstall:
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now tcmu-shared-volume.service 2>/dev/null || true; fi
	rm -f $(DESTDIR)$(PREFIX)/sbin/tcmu-shared-volume $(DESTDIR)$(PREFIX)/sbin/tsvctl
	rm -f $(DESTDIR)$(UNITDIR)/tcmu-shared-volume.service
	rm -f $(DESTDIR)$(DBUS_POLICYDIR)/org.kernel.TCMUService1.conf
	rm -f $(DESTDIR)$(DBUS_SERVICEDIR)/org.kernel.TCMUService1.service
	rm -f $(DESTDIR)$(MANDIR)/man8/tcmu-shared-volume.8 $(DESTDIR)$(MANDIR)/man8/tsvctl.8
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# out/tcmu-shared-volume-<version>-1.x86_64.rpm (packaging/rpm); Debian's rpm builds it here.
.PHONY: rpm
rpm: publish-aot
	packaging/build-rpm.sh

# A one-node Ceph on 127.0.0.1 (one monitor, one memstore OSD, cephx) under /var/tmp/tsv-ceph,
# from Debian's packages: for the RBD tests and demos. Idempotent; prints its ceph.conf path.
.PHONY: ceph ceph-stop
ceph:
	scripts/ceph/start.sh
ceph-stop:
	WIPE=1 scripts/ceph/stop.sh

clean:
	rm -rf $(OUT)
	$(DOTNET) clean TcmuSharedVolume.sln -c $(CONFIGURATION) >/dev/null
