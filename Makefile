# wssignd — the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export CGO_ENABLED := 1

DEV_DIR := var
DEV_SOCKET := run/wssignd.sock

.PHONY: all deps build run test lint bench clean

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -trimpath -o bin/wssignd ./cmd/wssignd

## run: install what is missing, create the SoftHSM2 dev token and config if absent, serve on ./run/wssignd.sock
run: deps build
	@bin/wssignd dev-setup -dir $(DEV_DIR) -socket $(DEV_SOCKET)
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
	@echo "  xmlsec1 --verify --pubkey-cert-pem $(DEV_DIR)/certs/dev-rsa.pem --id-attr:Id Body --id-attr:Id Timestamp /tmp/signed.xml"
	@echo
	@echo "Stop with Ctrl-C."
	@echo
	SOFTHSM2_CONF=$(CURDIR)/$(DEV_DIR)/softhsm/softhsm2.conf exec bin/wssignd -config $(DEV_DIR)/wssignd.toml

## test: the whole suite — unit, SoftHSM2 integration, xmlsec1 and libxml2 interop — with the race detector
test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin dist
