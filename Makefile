# TcmuSharedVolume — every target installs what it needs on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := build

CONFIGURATION ?= Release
RID ?= linux-x64
OUT := out
BIN := $(OUT)/bin
DOTNET ?= dotnet
PREFIX ?= /usr/local

.PHONY: build publish test e2e demo bench bench-e2e package install uninstall clean deps-vm

build:
	$(DOTNET) build TcmuSharedVolume.sln -c $(CONFIGURATION)

# Self-contained single-file builds: the binaries the VM, the packages and `make install` use.
publish:
	$(DOTNET) publish src/tcmu-shared-volume/tcmu-shared-volume.csproj -c $(CONFIGURATION) -r $(RID) --self-contained -p:PublishSingleFile=true -o $(BIN)
	$(DOTNET) publish src/tsvctl/tsvctl.csproj -c $(CONFIGURATION) -r $(RID) --self-contained -p:PublishSingleFile=true -o $(BIN)
	rm -f $(BIN)/*.pdb

# Native AOT binaries in $(OUT)/aot (what the packages ship); clang and zlib1g-dev come from
# scripts/deps-aot.sh. See scripts/publish-aot.sh for the net9.0 fallback of the daemon where
# NuGet lacks .NET 10's NativeAOT runtime pack.
.PHONY: publish-aot
publish-aot:
	CONFIGURATION=$(CONFIGURATION) RID=$(RID) DOTNET=$(DOTNET) scripts/publish-aot.sh

# All in-process tests (ring simulator, command set, reservations, control plane).
test:
	$(DOTNET) test TcmuSharedVolume.sln -c $(CONFIGURATION) --logger "console;verbosity=normal"

# Tests against a real kernel in the QEMU VM (scripts/vm).
e2e: publish
	scripts/vm/deps.sh
	tests/e2e/run-all.sh

demo: publish
	scripts/vm/deps.sh
	scripts/demo.sh

bench:
	$(DOTNET) run -c Release --project tests/TcmuSharedVolume.Benchmarks -- --filter '*' $(BENCH_ARGS)

bench-e2e: publish
	scripts/vm/deps.sh
	tests/e2e/bench.sh

# out/tcmu-shared-volume_<version>_amd64.deb from the AOT binaries, checked with lintian
# (packaging/README.md).
package: publish-aot
	packaging/build-deb.sh

install: publish
	install -D -m 0755 $(BIN)/tcmu-shared-volume $(DESTDIR)$(PREFIX)/sbin/tcmu-shared-volume
	install -D -m 0755 $(BIN)/tsvctl $(DESTDIR)$(PREFIX)/sbin/tsvctl

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/tcmu-shared-volume $(DESTDIR)$(PREFIX)/sbin/tsvctl

clean:
	rm -rf $(OUT)
	$(DOTNET) clean TcmuSharedVolume.sln -c $(CONFIGURATION) >/dev/null
