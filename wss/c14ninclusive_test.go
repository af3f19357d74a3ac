package wss

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// TestCanonicalizeInclusiveXmllint: over the C14N corpus, the Canonical XML
// 1.0 (WithComments) form of each document element equals libxml2's
// (xmllint --c14n canonicalises whole documents, keeping comments: what it
// writes outside the document element is comments and PIs only).
func TestCanonicalizeInclusiveXmllint(t *testing.T) {
	xmllint := testutil.RequireTool(t, "xmllint", "libxml2-utils")
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "testdata", "c14n", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	outside := regexp.MustCompile(`^(?s:\s*(<!--.*?-->|<\?.*?\?>))*\s*$`)
	compared := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseSpanTree(context.Background(), raw, Limits{MaxBytes: 64 << 20})
		if err != nil {
			continue // documents the envelope parser refuses
		}
		want, err := exec.Command(xmllint, "--huge", "--c14n", f).Output()
		if err != nil {
			continue
		}
		var got bytes.Buffer
		if err := st.root().canonicalizeInclusive(&got, true); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		i := bytes.Index(want, got.Bytes())
		if i < 0 || !outside.Match(want[:i]) || !outside.Match(want[i+got.Len():]) {
			t.Errorf("%s: differs from xmllint --c14n:\n got %.400s\nwant %.400s", filepath.Base(f), got.Bytes(), want)
			continue
		}
		compared++
	}
	if compared < len(files)/2 {
		t.Errorf("only %d of %d corpus documents compared", compared, len(files))
	}
	t.Logf("%d/%d documents equal to xmllint --c14n", compared, len(files))
}

// TestCanonicalizeInclusiveSubtree pins the rules for a subtree: every
// namespace in scope and the nearest xml:* attributes on the apex, only
// changed declarations below it, xmlns="" where a rendered default is
// undeclared, and no xmlns="" where nothing was rendered.
func TestCanonicalizeInclusiveSubtree(t *testing.T) {
	doc := `<r xmlns="urn:d" xmlns:a="urn:a" xml:lang="en" xml:space="preserve"><m xmlns:a="urn:a2" xml:lang="nl"><x:t xmlns:x="urn:x" a:k="1" xml:space="default"><u xmlns=""><v xmlns=""/><w xmlns:a="urn:a2"/></u></x:t></m></r>`
	st, err := parseSpanTree(context.Background(), []byte(doc), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := st.ref(2).canonicalizeInclusive(&got, false); err != nil {
		t.Fatal(err)
	}
	// Attributes sort by namespace URI: the XML namespace (http://www.w3.org/...) before urn:a2.
	want := `<x:t xmlns="urn:d" xmlns:a="urn:a2" xmlns:x="urn:x" xml:lang="nl" xml:space="default" a:k="1"><u xmlns=""><v></v><w></w></u></x:t>`
	if got.String() != want {
		t.Errorf("got  %s\nwant %s", got.String(), want)
	}
}
