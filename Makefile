# wssignd — the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 1

# TOKEN=softhsm (default): a SoftHSM2 token under var/. TOKEN=tpm: a tpm2-pkcs11 token on the
# host TPM (/dev/tpmrm0) or, without one, on a software TPM (swtpm + tpm2-abrmd) under var/tpm/.
TOKEN ?= softhsm
ifeq ($(TOKEN),tpm)
DEV_DIR := var/tpm
else ifeq ($(TOKEN),softhsm)
DEV_DIR := var
else
$(error TOKEN=$(TOKEN): want softhsm or tpm)
endif
DEV_SOCKET := run/wssignd.sock

.PHONY: all deps build run test lint bench clean distclean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -trimpath -o bin/wssignd ./cmd/wssignd

## run: install what is missing, create the dev token (SoftHSM2, or TOKEN=tpm a TPM) and config if absent,
## serve on ./run/wssignd.sock
run: deps build
ifeq ($(TOKEN),tpm)
	@scripts/dev-tpm.sh $(DEV_DIR)
	@. $(DEV_DIR)/env && bin/wssignd dev-setup -token tpm -dir $(DEV_DIR) -socket $(DEV_SOCKET)
else
	@bin/wssignd dev-setup -dir $(DEV_DIR) -socket $(DEV_SOCKET)
endif
	@echo
	@echo "wssignd is starting on $(CURDIR)/$(DEV_SOCKET). In another terminal:"
	@echo
	@echo "  # sign a SOAP 1.1 envelope with the token's RSA key"
	@echo "  curl -sS --unix-socket $(DEV_SOCKET) -H 'Content-Type: text/xml' --data-binary @testdata/envelope-soap11.xml 'http://localhost/v1/soap/sign?profile=default'"
	@echo
	@echo "  # list the keys you may use, with their certificates"
	@echo "  curl -sS --unix-socket $(DEV_SOCKET) http://localhost/v1/keys"
	@echo
	@echo "  # check a signed envelope with xmlsec1 (an independent implementation)"
	@echo "  curl -sS --unix-socket $(DEV_SOCKET) -H 'Content-Type: text/xml' --data-binary @testdata/envelope-soap11.xml 'http://localhost/v1/soap/sign?profile=default' > /tmp/signed.xml"
	@echo "  xmlsec1 --verify --pubkey-cert-pem $(DEV_DIR)/certs/dev-rsa.pem --id-attr:Id Body --id-attr:Id Timestamp --id-attr:Id BinarySecurityToken /tmp/signed.xml"
	@echo
	@echo "Stop with Ctrl-C."
	@echo
ifeq ($(TOKEN),tpm)
	. $(DEV_DIR)/env && exec bin/wssignd -config $(DEV_DIR)/wssignd.toml
else
	SOFTHSM2_CONF=$(CURDIR)/$(DEV_DIR)/softhsm/softhsm2.conf exec bin/wssignd -config $(DEV_DIR)/wssignd.toml
endif

## test: the whole suite — unit, SoftHSM2 integration, xmlsec1 and libxml2 interop — with the race detector
test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## lint: gofmt, go vet, staticcheck and govulncheck (pinned, from the Go module proxy)
lint:
	@GO=$(GO) scripts/lint.sh

## clean: removes what the build and make bench make. distclean also removes the dev token,
## its keys and config under var/ and the socket directory run/ (make run creates new ones).
clean:
	rm -rf bin dist bench/out
	rm -f bench/*.prof bench/*.test

distclean: clean
	@if [ -d var/tpm ]; then scripts/dev-tpm.sh var/tpm stop; fi
	rm -rf var run

## deb, rpm: the packages in dist/, built with nfpm (pinned, compiled from
## the Go module proxy; no prebuilt download) from packaging/nfpm.yaml. The
## binary is built with cgo against glibc, as PIE.
NFPM := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
PKG_VERSION ?= 0.1.0~git$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
PKG_ARCH ?= $(shell $(GO) env GOARCH)
PKG_BUILD = mkdir -p dist/build && $(GO) build -trimpath -buildmode=pie -ldflags='-s -w' -o dist/build/wssignd ./cmd/wssignd

.PHONY: deb rpm test-package

deb:
	$(PKG_BUILD)
	NFPM_VERSION='$(PKG_VERSION)' NFPM_ARCH='$(PKG_ARCH)' $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/

rpm:
	$(PKG_BUILD)
	NFPM_VERSION='$(PKG_VERSION)' NFPM_ARCH='$(PKG_ARCH)' $(NFPM) package --config packaging/nfpm.yaml --packager rpm --target dist/

## test-package (root): builds the .deb and .rpm, installs the .deb with dpkg,
## checks files, owners, modes, users and the shipped config, purges it, and
## compares the rpm's file list.
test-package:
	scripts/package-test.sh

## bench (not part of make test): builds the daemon and the harness, which makes its own
## SoftHSM2 token (and a TPM token on a software TPM: the "TPM" rows) and prints one table measured in one run (raw C_Sign, hsm Signer, wss.Sign,
## end to end over the socket, xmlsec1), also written to bench/out/results.md and results.tsv;
## then the Go benchmarks of the signing path (bench/out/gobench.txt) and the CPU and memory
## profiles of signing a 100KB envelope without the private-key operation (bench/out/profile-*.txt).
## Everything it writes is under bench/out/ (ignored by git, removed by make clean).
## BENCH_FLAGS passes options to the harness (e.g. BENCH_FLAGS='-d 3s -rounds 5').
bench: deps
	$(GO) build -trimpath -o bin/wssignd ./cmd/wssignd
	$(GO) build -trimpath -o bin/wssignd-bench ./bench/cmd/wssignd-bench
	mkdir -p bench/out
	bin/wssignd-bench -daemon bin/wssignd -out bench/out -repo . $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench '^Benchmark(Sign|SignXMLOverhead|ScanEnvelope|Verify|Decrypt)$$' -benchtime 300ms ./wss | tee bench/out/gobench.txt
	$(GO) test -run '^$$' -bench '^BenchmarkSignXMLOverhead$$/^100KB$$' -benchtime 3s -o bench/out/wss.test \
		-cpuprofile bench/out/cpu.prof -memprofile bench/out/mem.prof ./wss
	$(GO) tool pprof -top -nodecount=15 bench/out/wss.test bench/out/cpu.prof | tee bench/out/profile-cpu.txt
	$(GO) tool pprof -top -cum -nodecount=25 bench/out/wss.test bench/out/cpu.prof > bench/out/profile-cpu-cum.txt
	$(GO) tool pprof -top -nodecount=15 -sample_index=alloc_space bench/out/wss.test bench/out/mem.prof | tee bench/out/profile-mem.txt
