#!/usr/bin/env bash
# make lint: gofmt, go vet, staticcheck and govulncheck, each pinned and built
# from the Go module proxy. govulncheck reads a local copy of the Go
# vulnerability database, built from the golang.org/x/vulndb module (the
# database's own host is not reachable from every machine that builds this).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK=golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
$GO vet ./...
$GO run $STATICCHECK ./...

db=bin/vulndb/$VULNDB_VERSION
if [ ! -e "$db/index/db.json" ]; then
	src=$($GO mod download -json golang.org/x/vulndb@$VULNDB_VERSION | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	rm -rf "$db.tmp"
	$GO run golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION -vulns "$src/data/osv" -out "$db.tmp"
	mv "$db.tmp" "$db"
fi
out=$(mktemp); trap 'rm -f "$out"' EXIT
rc=0
# go run would turn govulncheck's own exit status into 1: install and run it.
GOBIN="$PWD/bin" $GO install $GOVULNCHECK
bin/govulncheck -db "file://$PWD/$db" ./... >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
	echo "govulncheck failed to run (exit $rc)"; exit "$rc"
fi
# A vulnerable module that our code calls fails the lint. A vulnerability in
# the standard library is fixed by the Go toolchain, not by this repository:
# it is reported as a warning naming the release that fixes it.
if grep -E '^ +Found in: ' "$out" | grep -vqE '@go[0-9]'; then
	echo "lint: govulncheck found called vulnerabilities in required modules"; exit 1
fi
if grep -qE '^ +Found in: .*@go[0-9]' "$out"; then
	echo "lint: warning: the Go toolchain $($GO env GOVERSION) has called standard-library vulnerabilities; build releases with the fixed Go release named above"
fi
