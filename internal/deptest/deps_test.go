// Package deptest enforces the package seams of DESIGN.md: what each
// package may import. It fails the build when a seam is crossed.
package deptest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/wssignd/wssignd"

// forbidden lists, per package, import path prefixes that must not appear
// among its dependencies (direct or not; tests excluded).
var forbidden = map[string][]string{
	mod + "/wss": {mod + "/hsm", mod + "/api", mod + "/internal/daemon", mod + "/cmd", "github.com/miekg/pkcs11", "github.com/ThalesGroup/crypto11"},
	mod + "/api": {mod + "/hsm", mod + "/internal/daemon", mod + "/cmd", "github.com/miekg/pkcs11", "github.com/ThalesGroup/crypto11"},
	// The daemon library is wired by the command, never the other way round.
	mod + "/internal/daemon": {mod + "/cmd", mod + "/client"},
	// The configuration may use the shared table of names and defaults
	// only (see allowed).
	mod + "/internal/config": {mod + "/", "github.com/miekg/pkcs11", "github.com/ThalesGroup/crypto11"},
	// The shared table of names and defaults: the standard library only.
	mod + "/internal/defs": {mod + "/", "github.com/"},
	mod + "/cmd/wssign":    {mod + "/hsm", mod + "/api", mod + "/wss", "github.com/miekg/pkcs11", "github.com/ThalesGroup/crypto11", "github.com/prometheus", "github.com/beevik/etree"},
	// The Go client: the standard library only.
	mod + "/client": {mod + "/", "github.com/"},
	// Test helpers for the api's clients never reach a token.
	mod + "/api/apitest": {mod + "/hsm", mod + "/cmd", "github.com/miekg/pkcs11"},
}

// allowed lists, per package, dependencies that its forbidden prefixes
// would otherwise catch.
var allowed = map[string][]string{
	mod + "/internal/config": {mod + "/internal/defs"},
}

// noImport lists, per package, packages it must not import itself (they
// may still come in through a dependency: goxmldsig, kept for its algorithm
// identifiers, brings etree). wss reads XML with its own tokenizer only.
var noImport = map[string][]string{
	mod + "/wss": {"github.com/beevik/etree"},
}

// moduleImports lists, per package, the only packages of this module it may
// import itself.
var moduleImports = map[string][]string{
	mod + "/internal/daemon": {mod + "/api", mod + "/wss", mod + "/hsm", mod + "/internal/config", mod + "/internal/defs"},
}

// testOracles are packages that only tests may use: no package depends on
// them outside its tests.
var testOracles = []string{mod + "/internal/etreec14n"}

// pkcs11Importers are the only packages that may import a PKCS#11 library
// directly: hsm, and the benchmark baseline (raw C_Sign without hsm in the
// way), which only the measurement harness may depend on.
var pkcs11Importers = map[string]bool{mod + "/hsm": true, rawSignBaseline: true}

// rawSignBaseline is the benchmark baseline; no package outside bench/
// depends on it.
const rawSignBaseline = mod + "/bench/rawsign"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json", mod+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestSeams(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 8 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
		for _, imp := range p.Imports {
			if (strings.HasPrefix(imp, "github.com/miekg/pkcs11") || strings.HasPrefix(imp, "github.com/ThalesGroup/crypto11")) && !pkcs11Importers[p.ImportPath] {
				t.Errorf("%s imports %s: only hsm may talk PKCS#11", p.ImportPath, imp)
			}
		}
		if p.ImportPath == mod+"/cmd/wssign" {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, mod+"/") && imp != mod+"/client" {
					t.Errorf("the CLI imports %s: it may use the client package only", imp)
				}
			}
		}
		if allowed, ok := moduleImports[p.ImportPath]; ok {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, mod+"/") && !slices.Contains(allowed, imp) {
					t.Errorf("%s imports %s: it may import only %v of this module", p.ImportPath, imp, allowed)
				}
			}
		}
		for _, bad := range noImport[p.ImportPath] {
			if slices.Contains(p.Imports, bad) {
				t.Errorf("%s imports %s", p.ImportPath, bad)
			}
		}
		if p.ImportPath != rawSignBaseline && !strings.HasPrefix(p.ImportPath, mod+"/bench/") && slices.Contains(p.Deps, rawSignBaseline) {
			t.Errorf("%s depends on %s, the benchmark baseline", p.ImportPath, rawSignBaseline)
		}
		for _, o := range testOracles {
			if p.ImportPath != o && slices.Contains(p.Deps, o) {
				t.Errorf("%s depends on %s, a test oracle", p.ImportPath, o)
			}
		}
		for _, bad := range forbidden[p.ImportPath] {
			for _, dep := range p.Deps {
				if strings.HasPrefix(dep, bad) && dep != p.ImportPath && !slices.Contains(allowed[p.ImportPath], dep) {
					t.Errorf("%s depends on %s", p.ImportPath, dep)
				}
			}
		}
	}
	for _, o := range testOracles {
		if !seen[o] {
			t.Errorf("test oracle %s not found: the rule checks nothing", o)
		}
	}
	if !seen[rawSignBaseline] {
		t.Errorf("benchmark baseline %s not found: the rule checks nothing", rawSignBaseline)
	}
	for path := range forbidden {
		if !seen[path] {
			t.Errorf("package %s not found: the rule checks nothing", path)
		}
	}
}
