package wss

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
)

// attackParts signs every WS-Addressing header of envelope-wsa.xml.
var attackParts = []Part{PartBody(), PartTimestamp(),
	{Space: nsWSA10, Local: "To"}, {Space: nsWSA10, Local: "Action"}, {Space: nsWSA10, Local: "MessageID"}, {Space: nsWSA10, Local: "ReplyTo"}}

type attackCase struct {
	name  string
	build func(t *testing.T, valid []byte) []byte
	opts  func(o *VerifyOptions) // nil: the defaults
	want  Code                   // the verdict code; "" means valid
	err   bool                   // want is an error code, not a verdict
}

// cut returns the first match of re in b and b without it; the test fails
// when there is none, so that no case silently turns into a no-op.
func cut(t *testing.T, b []byte, re string) (match, rest []byte) {
	t.Helper()
	loc := regexp.MustCompile(re).FindIndex(b)
	if loc == nil {
		t.Fatalf("pattern %s not found", re)
	}
	match = bytes.Clone(b[loc[0]:loc[1]])
	rest = append(bytes.Clone(b[:loc[0]]), b[loc[1]:]...)
	return match, rest
}

// replace replaces the first occurrence of old; it must exist.
func replace(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%q not found", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func idOf(t *testing.T, el []byte) string {
	t.Helper()
	m := regexp.MustCompile(`wsu:Id="([^"]+)"`).FindSubmatch(el)
	if m == nil {
		t.Fatalf("no wsu:Id in %s", el)
	}
	return string(m[1])
}

const (
	reBody      = `<s:Body [^>]*>.*?</s:Body>`
	reTimestamp = `<wsu:Timestamp [^>]*>.*?</wsu:Timestamp>`
	reTo        = `<a:To [^>]*>[^<]*</a:To>`
	reMessageID = `<a:MessageID [^>]*>[^<]*</a:MessageID>`
	forgedBody  = `<s:Body><Ping xmlns="urn:example:ping"><Text>transfer everything</Text></Ping></s:Body>`
	wsuDecl     = ` xmlns:wsu="` + NSWSU + `"`
	secOpen     = `s:mustUnderstand="1">`
)

func attackCases() []attackCase {
	signWith := func(key string, o SignOptions) func(t *testing.T, _ []byte) []byte {
		return func(t *testing.T, _ []byte) []byte {
			if o.Parts == nil {
				o.Parts = attackParts
			}
			return signFixed(t, testutil.ReadTestdata(t, "envelope-wsa.xml"), loadCredential(t, key), o)
		}
	}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return fixedNow().Add(d) } }
	return []attackCase{
		{name: "valid", build: func(t *testing.T, v []byte) []byte { return v }},
		{name: "body-moved-to-header-wrapper", want: CodeInvalidSOAP, build: func(t *testing.T, v []byte) []byte {
			body, rest := cut(t, v, reBody)
			rest = replace(t, rest, "</s:Envelope>", forgedBody+"</s:Envelope>")
			return replace(t, rest, "<s:Header>", `<s:Header><w:Wrapper xmlns:w="urn:attacker">`+string(body)+`</w:Wrapper>`)
		}},
		{name: "body-moved-to-security", want: CodeInvalidSOAP, build: func(t *testing.T, v []byte) []byte {
			body, rest := cut(t, v, reBody)
			rest = replace(t, rest, "</s:Envelope>", forgedBody+"</s:Envelope>")
			return replace(t, rest, secOpen, secOpen+string(body))
		}},
		{name: "body-moved-to-signature-object", want: CodeInvalidSOAP, build: func(t *testing.T, v []byte) []byte {
			body, rest := cut(t, v, reBody)
			rest = replace(t, rest, "</s:Envelope>", forgedBody+"</s:Envelope>")
			return replace(t, rest, "</ds:KeyInfo>", "</ds:KeyInfo><ds:Object>"+string(body)+"</ds:Object>")
		}},
		{name: "body-moved-forged-body-same-id", want: CodeInvalidSOAP, build: func(t *testing.T, v []byte) []byte {
			body, rest := cut(t, v, reBody)
			forged := strings.Replace(forgedBody, "<s:Body>", `<s:Body`+wsuDecl+` wsu:Id="`+idOf(t, body)+`">`, 1)
			rest = replace(t, rest, "</s:Envelope>", forged+"</s:Envelope>")
			return replace(t, rest, "<s:Header>", `<s:Header><w:Wrapper xmlns:w="urn:attacker">`+string(body)+`</w:Wrapper>`)
		}},
		{name: "body-not-signed", want: CodeNotSigned, build: signWith("rsa2048", SignOptions{Parts: attackParts[1:]})},
		{name: "duplicate-id-wsu", want: CodeDuplicateID, build: func(t *testing.T, v []byte) []byte {
			body, _ := cut(t, v, reBody)
			return replace(t, v, "<s:Header>", `<s:Header><w:Decoy xmlns:w="urn:attacker"`+wsuDecl+` wsu:Id="`+idOf(t, body)+`"/>`)
		}},
		{name: "duplicate-id-wsu-other-prefix", want: CodeDuplicateID, build: func(t *testing.T, v []byte) []byte {
			body, _ := cut(t, v, reBody)
			return replace(t, v, "<s:Header>", `<s:Header><w:Decoy xmlns:w="urn:attacker" xmlns:u="`+NSWSU+`" u:Id="`+idOf(t, body)+`"/>`)
		}},
		{name: "duplicate-id-mixed-Id", want: CodeDuplicateID, build: func(t *testing.T, v []byte) []byte {
			body, _ := cut(t, v, reBody)
			return replace(t, v, "<s:Header>", `<s:Header><w:Decoy xmlns:w="urn:attacker" Id="`+idOf(t, body)+`"/>`)
		}},
		{name: "duplicate-id-mixed-ID", want: CodeDuplicateID, build: func(t *testing.T, v []byte) []byte {
			body, _ := cut(t, v, reBody)
			return replace(t, v, "<s:Header>", `<s:Header><w:Decoy xmlns:w="urn:attacker" ID="`+idOf(t, body)+`"/>`)
		}},
		{name: "duplicate-id-mixed-xml-id", want: CodeDuplicateID, build: func(t *testing.T, v []byte) []byte {
			ts, _ := cut(t, v, reTimestamp)
			return replace(t, v, "<s:Header>", `<s:Header><w:Decoy xmlns:w="urn:attacker" xml:id="`+idOf(t, ts)+`"/>`)
		}},
		{name: "wsu-prefix-bound-elsewhere", want: CodeReferenceNotFound, build: func(t *testing.T, v []byte) []byte {
			// The Body's "wsu" prefix now names another namespace: its
			// attribute is no wsu:Id, whatever the prefix says.
			return replace(t, v, `<s:Body xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:wsu="`+NSWSU+`"`,
				`<s:Body xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:wsu="urn:attacker:not-wsu"`)
		}},
		{name: "second-body", want: CodeInvalidSOAP, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, "</s:Envelope>", forgedBody+"</s:Envelope>")
		}},
		{name: "second-timestamp", want: CodeTimestampDuplicate, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, secOpen, secOpen+`<wsu:Timestamp><wsu:Created>2026-11-29T12:00:00Z</wsu:Created><wsu:Expires>2026-11-30T12:00:00Z</wsu:Expires></wsu:Timestamp>`)
		}},
		{name: "timestamp-moved", want: CodeTimestampMisplaced, build: func(t *testing.T, v []byte) []byte {
			ts, rest := cut(t, v, reTimestamp)
			return replace(t, rest, "</s:Header>", `<w:Wrapper xmlns:w="urn:attacker"`+wsuDecl+`>`+string(ts)+`</w:Wrapper></s:Header>`)
		}},
		{name: "timestamp-moved-forged", want: CodeTimestampDuplicate, build: func(t *testing.T, v []byte) []byte {
			ts, rest := cut(t, v, reTimestamp)
			rest = replace(t, rest, secOpen, secOpen+`<wsu:Timestamp><wsu:Created>2026-11-29T12:00:00Z</wsu:Created></wsu:Timestamp>`)
			return replace(t, rest, "</s:Header>", `<w:Wrapper xmlns:w="urn:attacker"`+wsuDecl+`>`+string(ts)+`</w:Wrapper></s:Header>`)
		}},
		{name: "wsa-to-moved", want: CodeNotSigned, build: func(t *testing.T, v []byte) []byte {
			to, rest := cut(t, v, reTo)
			rest = replace(t, rest, "</s:Header>", `<a:To s:mustUnderstand="1">https://attacker.example/</a:To></s:Header>`)
			return replace(t, rest, secOpen, secOpen+`<w:Wrapper xmlns:w="urn:attacker">`+string(to)+`</w:Wrapper>`)
		}},
		{name: "reference-to-removed-element", want: CodeReferenceNotFound, build: func(t *testing.T, v []byte) []byte {
			_, rest := cut(t, v, reMessageID)
			return rest
		}},
		{name: "reference-external-uri", want: CodeReferenceURI, build: func(t *testing.T, v []byte) []byte {
			return regexp.MustCompile(`URI="#id-[0-9a-f]+"`).ReplaceAll(v, []byte(`URI="http://attacker.example/doc.xml"`))
		}},
		{name: "reference-xpointer", want: CodeReferenceURI, build: func(t *testing.T, v []byte) []byte {
			body, _ := cut(t, v, reBody)
			return replace(t, v, `URI="#`+idOf(t, body)+`"`, `URI="#xpointer(id('`+idOf(t, body)+`'))"`)
		}},
		{name: "tampered-text", want: CodeDigestMismatch, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, "<Text>hello</Text>", "<Text>hellp</Text>")
		}},
		{name: "tampered-signature-value", want: CodeSignatureInvalid, build: func(t *testing.T, v []byte) []byte {
			m := regexp.MustCompile(`<ds:SignatureValue>(.)`).FindSubmatchIndex(v)
			out := bytes.Clone(v)
			if out[m[2]] == 'A' {
				out[m[2]] = 'B'
			} else {
				out[m[2]] = 'A'
			}
			return out
		}},
		{name: "sha1-downgrade", want: CodeAlgorithmNotAllowed, build: signWith("rsa2048", SignOptions{SignatureMethod: AlgRSASHA1, DigestMethod: AlgSHA1, AllowSHA1: true})},
		{name: "sha1-digest-only", want: CodeAlgorithmNotAllowed, build: signWith("rsa2048", SignOptions{DigestMethod: AlgSHA1, AllowSHA1: true})},
		{name: "md5-digest", want: CodeAlgorithmNotAllowed, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, AlgSHA256, "http://www.w3.org/2001/04/xmldsig-more#md5")
		}},
		{name: "md5-signature", want: CodeAlgorithmNotAllowed, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, AlgRSASHA256, "http://www.w3.org/2001/04/xmldsig-more#rsa-md5")
		}},
		{name: "hmac-signature", want: CodeAlgorithmNotAllowed, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, AlgRSASHA256, "http://www.w3.org/2000/09/xmldsig#hmac-sha1")
		}},
		// A key of its own (RSA, so that the corpus is reproducible byte for
		// byte), trusted by nobody.
		{name: "untrusted-key", want: CodeUntrustedKey, build: signWith("../attacks/untrusted-rsa", SignOptions{})},
		{name: "keyvalue-instead-of-token", want: CodeKeyNotFound, build: func(t *testing.T, v []byte) []byte {
			_, rest := cut(t, v, `<wsse:SecurityTokenReference .*?</wsse:SecurityTokenReference>`)
			return replace(t, rest, "<ds:KeyInfo>", `<ds:KeyInfo><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus><ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>`)
		}},
		{name: "expired-timestamp", want: CodeTimestampExpired, build: signWith("rsa2048", SignOptions{Now: at(-10 * time.Minute)})},
		{name: "future-timestamp", want: CodeTimestampFuture, build: signWith("rsa2048", SignOptions{Now: at(10 * time.Minute)})},
		{name: "overlong-timestamp", want: CodeTimestampLifetime, build: signWith("rsa2048", SignOptions{TTL: 2 * time.Hour})},
		{name: "replay", want: CodeReplay, build: func(t *testing.T, v []byte) []byte { return v }},
		{name: "unsigned", want: CodeUnsigned, build: func(t *testing.T, _ []byte) []byte { return testutil.ReadTestdata(t, "envelope-wsa.xml") }},
		{name: "two-security-headers", want: CodeSecurityHeader, build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, "<s:Header>", `<s:Header><wsse:Security xmlns:wsse="`+NSWSSE+`"/>`)
		}},
		{name: "two-signatures", want: CodeSecurityHeader, build: func(t *testing.T, v []byte) []byte {
			sig, _ := cut(t, v, `<ds:Signature .*?</ds:Signature>`)
			sig = regexp.MustCompile(` (wsu:)?Id="[^"]*"`).ReplaceAll(sig, nil)
			return replace(t, v, "</wsse:Security>", string(sig)+"</wsse:Security>")
		}},
		{name: "doctype-external-entity", want: CodeDTDForbidden, err: true, build: func(t *testing.T, v []byte) []byte {
			v = replace(t, v, "<Text>hello</Text>", "<Text>&xxe;</Text>")
			return append([]byte(`<?xml version="1.0"?>`+"\n"+`<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`+"\n"), v...)
		}},
		{name: "entity-expansion-bomb", want: CodeDTDForbidden, err: true, build: func(t *testing.T, v []byte) []byte {
			var d strings.Builder
			d.WriteString(`<!DOCTYPE s:Envelope [<!ENTITY lol0 "lol">`)
			for i := 1; i < 10; i++ {
				d.WriteString(`<!ENTITY lol` + string(rune('0'+i)) + ` "` + strings.Repeat("&lol"+string(rune('0'+i-1))+";", 10) + `">`)
			}
			d.WriteString("]>\n")
			v = replace(t, v, "<Text>hello</Text>", "<Text>&lol9;</Text>")
			return append([]byte(d.String()), v...)
		}},
		{name: "comment-in-signed-text", build: func(t *testing.T, v []byte) []byte {
			return replace(t, v, "<Text>hello</Text>", "<Text>hel<!-- injected -->lo</Text>")
		}},
	}
}

// TestAttacks builds the testdata/attacks corpus from one valid message
// (with -update) and checks that each file gets its expected verdict.
func TestAttacks(t *testing.T) {
	rsa := loadCredential(t, "rsa2048")
	valid := signFixed(t, testutil.ReadTestdata(t, "envelope-wsa.xml"), rsa, SignOptions{Parts: attackParts})
	dir := filepath.Join(testutil.RepoRoot(t), "testdata", "attacks")
	cases := attackCases()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if err := os.WriteFile(filepath.Join(dir, c.name+".xml"), c.build(t, valid), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.name+".xml")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	for _, f := range files {
		if !slices.Contains(names, filepath.Base(f)) {
			t.Errorf("%s is in the corpus but no case expects anything of it", f)
		}
	}
	trust := trustOf(t, rsa.Chain[0])
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(dir, c.name+".xml"))
			if err != nil {
				t.Fatalf("%v (run go test ./wss -run Attacks -update)", err)
			}
			o := VerifyOptions{Trust: trust, Now: fixedNow, Replay: NewReplayCache(16), Explain: true}
			if c.opts != nil {
				c.opts(&o)
			}
			if c.name == "replay" {
				verifyOK(t, msg, o)
			}
			res, err := Verify(context.Background(), msg, o)
			switch {
			case c.err:
				if CodeOf(err) != c.want || res != nil {
					t.Fatalf("got %+v, %v; want error %s", res, err, c.want)
				}
				return
			case err != nil:
				t.Fatalf("Verify: %v", err)
			case c.want == "" && !res.Valid:
				t.Fatalf("want valid, got %s: %s", res.Code, res.Detail)
			case c.want != "" && (res.Valid || res.Code != c.want):
				t.Fatalf("got valid=%v code=%s (%s); want %s", res.Valid, res.Code, res.Detail, c.want)
			}
			if c.want != "" && res.Signer != nil && res.Code != CodeReplay && !strings.HasPrefix(string(res.Code), "timestamp-") &&
				res.Code != CodeNotSigned && res.Code != CodeSignatureConfirmation {
				t.Errorf("a signer is reported for a message refused before trust: %+v", res.Signer)
			}
			if c.name == "comment-in-signed-text" {
				checkCommentCase(t, valid, trust, res)
			}
		})
	}
}

// checkCommentCase: the comment is not part of the signed content, and the
// content the signature covers (what explain reports) is the whole text,
// not the part before the comment.
func checkCommentCase(t *testing.T, valid []byte, trust *TrustStore, res *VerifyResult) {
	t.Helper()
	var body *RefExplain
	for i := range res.Explain {
		if res.Explain[i].Path == "/Envelope/Body" {
			body = &res.Explain[i]
		}
	}
	if body == nil {
		t.Fatalf("no explain record for the Body: %+v", res.Explain)
	}
	if !bytes.Contains(body.Canonical, []byte("<Text>hello</Text>")) || bytes.Contains(body.Canonical, []byte("injected")) {
		t.Errorf("signed Body content is %s", body.Canonical)
	}
	orig, err := Verify(context.Background(), valid, VerifyOptions{Trust: trust, Now: fixedNow, Explain: true})
	if err != nil || !orig.Valid {
		t.Fatalf("the valid message: %v %+v", err, orig)
	}
	for _, e := range orig.Explain {
		if e.Path == body.Path && !bytes.Equal(e.Canonical, body.Canonical) {
			t.Errorf("canonical Body differs from the original's:\n%s\n%s", e.Canonical, body.Canonical)
		}
	}
}
