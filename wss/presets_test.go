package wss

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// signChecked signs in and checks the output with what can check it:
// the test's own verifier and xmlsec1 (for References without Transforms,
// which digest Canonical XML 1.0, xmlsec1 is the independent check, and
// the own verifier's inclusive form is checked against it). Without a
// signature it only parses.
func signChecked(t *testing.T, in []byte, cred Credential, opts SignOptions) *SignResult {
	t.Helper()
	if opts.NoSignature {
		res, err := Sign(context.Background(), in, Credential{}, opts)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		if err := etree.NewDocument().ReadFromBytes(res.Envelope); err != nil {
			t.Fatal(err)
		}
		return res
	}
	if !opts.NoTransforms {
		res, _ := signOK(t, in, cred, opts)
		return res
	}
	res, err := Sign(context.Background(), in, cred, opts)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cred.Chain[0]); !ok {
		t.Fatalf("xmlsec1 rejects the signature:\n%s\n%s", out, res.Envelope)
	}
	if err := checkSignatureNoTransforms(res.Envelope, cred); err != nil {
		t.Fatalf("own check: %v\n%s", err, res.Envelope)
	}
	return res
}

var (
	timeSeconds = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	timeMillis  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	timeOffset  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`)
)

// presetEvidence is what the evidence says each preset's message looks
// like, point by point.
type presetEvidence struct {
	preset, envelope string
	soap             string         // the only SOAP version accepted; "" both
	security         []string       // the Security header's children, in order
	mustUnderstand   string         // its mustUnderstand value; "" none
	times            *regexp.Regexp // how Created and Expires are written; nil: no Timestamp
	ttl              time.Duration  // Expires − Created
	signed           []string       // the signed elements, in Reference order
	sigMethod        string
	digestMethod     string
	transforms       bool     // each Reference has one exclusive C14N Transform
	prefixLists      bool     // InclusiveNamespaces on SignedInfo and every Reference
	keyInfo          string   // the SecurityTokenReference's child
	bsp              []string // BSP 1.1 rules broken by design
	passwordType     string   // the UsernameToken's Password Type; "" none
}

var presetEvidenceTable = []presetEvidence{
	{preset: PresetBSPDefault, envelope: "envelope-soap11.xml",
		security: []string{"BinarySecurityToken", "Timestamp", "Signature"}, mustUnderstand: "1",
		times: timeSeconds, ttl: 300 * time.Second, signed: []string{"Body", "Timestamp", "BinarySecurityToken"},
		sigMethod: AlgRSASHA256, digestMethod: AlgSHA256, transforms: true, keyInfo: "Reference"},
	{preset: PresetDigikoppeling, envelope: "envelope-wsa.xml", soap: "1.1",
		security: []string{"BinarySecurityToken", "Timestamp", "Signature"}, mustUnderstand: "1",
		times: timeSeconds, ttl: 300 * time.Second, signed: []string{"Body", "To", "Action", "MessageID", "ReplyTo", "Timestamp"},
		sigMethod: AlgRSASHA256, digestMethod: AlgSHA256, transforms: true, keyInfo: "Reference"},
	{preset: PresetEHealthBE, envelope: "envelope-soap11.xml", soap: "1.1",
		security: []string{"BinarySecurityToken", "Timestamp", "Signature"}, mustUnderstand: "1",
		times: timeSeconds, ttl: 60 * time.Second, signed: []string{"BinarySecurityToken", "Timestamp", "Body"},
		sigMethod: AlgRSASHA256, digestMethod: AlgSHA256, transforms: true, keyInfo: "Reference"},
	{preset: PresetDIANCo, envelope: "envelope-soap12-wsa.xml", soap: "1.2",
		security: []string{"Timestamp", "BinarySecurityToken", "Signature"}, mustUnderstand: "",
		times: timeMillis, ttl: 60000 * time.Second, signed: []string{"To"},
		sigMethod: AlgRSASHA256, digestMethod: AlgSHA256, transforms: true, prefixLists: true, keyInfo: "Reference"},
	{preset: PresetSATMX, envelope: "envelope-soap11.xml", soap: "1.1",
		security: []string{"Timestamp", "BinarySecurityToken", "Signature"}, mustUnderstand: "1",
		times: timeMillis, ttl: 300 * time.Second, signed: []string{"Timestamp"},
		sigMethod: AlgRSASHA1, digestMethod: AlgSHA1, transforms: true, keyInfo: "Reference"},
	{preset: PresetFACeES, envelope: "envelope-soap11.xml", soap: "1.1",
		security: []string{"BinarySecurityToken", "Signature", "Timestamp"}, mustUnderstand: "1",
		times: timeOffset, ttl: 60 * time.Second, signed: []string{"Timestamp", "Body"},
		sigMethod: AlgRSASHA512, digestMethod: AlgSHA512, transforms: false, keyInfo: "Reference",
		bsp: []string{"R5416"}},
	{preset: PresetIRSACA, envelope: "envelope-irs-aca.xml", soap: "1.1",
		security: []string{"Timestamp", "Signature"}, mustUnderstand: "1",
		times: timeSeconds, ttl: 600 * time.Second, signed: []string{"Timestamp", "ACATransmitterManifestReqDtl", "ACABusinessHeader"},
		sigMethod: AlgRSASHA256, digestMethod: AlgSHA256, transforms: true, keyInfo: "KeyIdentifier",
		bsp: []string{"R5206"}},
	{preset: PresetSUNATPE, envelope: "envelope-soap11.xml",
		security: []string{"UsernameToken"}, mustUnderstand: "1", passwordType: PasswordTypeText},
}

// presetOptions returns a preset's options with what a profile must add.
func presetOptions(t *testing.T, name string) SignOptions {
	t.Helper()
	o, ok := Preset(name)
	if !ok {
		t.Fatalf("no preset %s", name)
	}
	if o.UsernameToken != nil {
		u := *o.UsernameToken
		u.Username, u.Password = "20123456789MODDATOS", "moddatos"
		o.UsernameToken = &u
	}
	o.Now, o.Rand = fixedNow, &countingReader{}
	return o
}

// TestPresetEvidence checks every preset's output, parsed, against the
// evidence points: SOAP version pinning, the Security header's order and
// mustUnderstand, the Timestamp's form and lifetime, the signed parts and
// their order, the algorithms, Transforms and InclusiveNamespaces, the
// token reference, the UsernameToken's password type, and the BSP rules
// each preset breaks on purpose (none but those listed).
func TestPresetEvidence(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	if len(presetEvidenceTable) != len(PresetNames()) {
		t.Fatalf("the evidence table covers %d presets, there are %d", len(presetEvidenceTable), len(PresetNames()))
	}
	for _, ev := range presetEvidenceTable {
		t.Run(ev.preset, func(t *testing.T) {
			res := signChecked(t, testutil.ReadTestdata(t, ev.envelope), cred, presetOptions(t, ev.preset))
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(res.Envelope); err != nil {
				t.Fatal(err)
			}
			var sec *etree.Element
			for _, s := range doc.FindElements("//Header/Security") {
				if s.NamespaceURI() == NSWSSE {
					sec = s
				}
			}
			if sec == nil {
				t.Fatal("no Security header")
			}
			ids := map[string]*etree.Element{}
			for _, el := range allElements(doc.Root()) {
				if v, ok := attrNS(el, NSWSU, "Id"); ok {
					ids[v] = el
				}
			}

			// Security is the first header block (DIAN: Security, then the
			// caller's wsa:Action and wsa:To).
			if hdr := doc.Root().SelectElement("Header"); hdr == nil || hdr.ChildElements()[0] != sec {
				t.Error("Security is not the first header block")
			}
			if got := childTags(sec); got != strings.Join(ev.security, ",") {
				t.Errorf("Security holds %s, want %s", got, strings.Join(ev.security, ","))
			}
			soapNS := doc.Root().NamespaceURI()
			if mu, _ := attrNS(sec, soapNS, "mustUnderstand"); mu != ev.mustUnderstand {
				t.Errorf("mustUnderstand %q, want %q", mu, ev.mustUnderstand)
			}

			ts := sec.SelectElement("Timestamp")
			if (ts != nil) != (ev.times != nil) {
				t.Fatalf("Timestamp present %v, want %v", ts != nil, ev.times != nil)
			}
			if ts != nil {
				created, expires := ts.SelectElement("Created").Text(), ts.SelectElement("Expires").Text()
				for _, v := range []string{created, expires} {
					if !ev.times.MatchString(v) {
						t.Errorf("time %q does not match %s", v, ev.times)
					}
				}
				c, err1 := time.Parse(time.RFC3339Nano, created)
				e, err2 := time.Parse(time.RFC3339Nano, expires)
				if err1 != nil || err2 != nil || e.Sub(c) != ev.ttl {
					t.Errorf("lifetime %v (%v, %v), want %v", e.Sub(c), err1, err2, ev.ttl)
				}
			}

			sig := sec.SelectElement("Signature")
			if (sig != nil) != (ev.sigMethod != "") {
				t.Fatalf("Signature present %v, want %v", sig != nil, ev.sigMethod != "")
			}
			if sig != nil {
				si := sig.SelectElement("SignedInfo")
				if m := si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", ""); m != ev.sigMethod {
					t.Errorf("SignatureMethod %s, want %s", m, ev.sigMethod)
				}
				if (prefixList(si.SelectElement("CanonicalizationMethod")) != nil) != ev.prefixLists {
					t.Errorf("SignedInfo InclusiveNamespaces present %v, want %v", !ev.prefixLists, ev.prefixLists)
				}
				var signed []string
				for _, r := range si.SelectElements("Reference") {
					el := ids[strings.TrimPrefix(r.SelectAttrValue("URI", ""), "#")]
					if el == nil {
						t.Fatalf("Reference %s resolves to nothing", r.SelectAttrValue("URI", ""))
					}
					signed = append(signed, el.Tag)
					if m := r.SelectElement("DigestMethod").SelectAttrValue("Algorithm", ""); m != ev.digestMethod {
						t.Errorf("DigestMethod %s, want %s", m, ev.digestMethod)
					}
					trs := r.FindElements("Transforms/Transform")
					switch {
					case ev.transforms && (len(trs) != 1 || trs[0].SelectAttrValue("Algorithm", "") != AlgExcC14N):
						t.Errorf("Reference %s: want one exclusive C14N Transform", el.Tag)
					case !ev.transforms && r.SelectElement("Transforms") != nil:
						t.Errorf("Reference %s has Transforms", el.Tag)
					}
					if ev.transforms && (prefixList(trs[0]) != nil) != ev.prefixLists {
						t.Errorf("Reference %s InclusiveNamespaces present %v, want %v", el.Tag, !ev.prefixLists, ev.prefixLists)
					}
				}
				if !slices.Equal(signed, ev.signed) {
					t.Errorf("signed %v, want %v", signed, ev.signed)
				}
				str := sig.FindElement("KeyInfo/SecurityTokenReference")
				if str == nil || len(str.ChildElements()) != 1 || str.ChildElements()[0].Tag != ev.keyInfo {
					t.Errorf("SecurityTokenReference does not hold a %s", ev.keyInfo)
				}
			}

			pt := ""
			if ut := sec.SelectElement("UsernameToken"); ut != nil {
				pt = ut.SelectElement("Password").SelectAttrValue("Type", "")
			}
			if pt != ev.passwordType {
				t.Errorf("Password Type %q, want %q", pt, ev.passwordType)
			}

			c := checkBSP(t, res.Envelope, cred.Chain[0])
			if got := c.rules(); !slices.Equal(got, ev.bsp) {
				t.Errorf("breaks BSP rules %v, want %v: %v", got, ev.bsp, c.out)
			}

			// SOAP version pinning: the other version is refused, or both
			// are accepted.
			other, otherNS := "envelope-soap12.xml", NSSOAP12
			if soapNS == NSSOAP12 {
				other, otherNS = "envelope-soap11.xml", NSSOAP11
			}
			opts := presetOptions(t, ev.preset)
			if !opts.NoSignature {
				opts.Parts = []Part{PartTimestamp()} // in every envelope
			}
			_, err := Sign(context.Background(), testutil.ReadTestdata(t, other), cred, opts)
			pinned := ev.soap != ""
			switch {
			case pinned && CodeOf(err) != CodeInvalidSOAP:
				t.Errorf("a %s envelope: %v, want refused", otherNS, err)
			case !pinned && err != nil:
				t.Errorf("a %s envelope refused: %v", otherNS, err)
			}
		})
	}
}

// TestReferencesWithoutTransforms: a Reference without Transforms digests
// the element's Canonical XML 1.0 form, in scope of every namespace of its
// ancestors (xmlsec1 checks it, for elements Sign adds and the caller's),
// and ancestors' xml:* attributes, which that form would inherit, are
// refused.
func TestReferencesWithoutTransforms(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	opts := SignOptions{NoTransforms: true, Parts: []Part{PartBody(), PartTimestamp(), PartBST(), {Space: NSWSA, Local: "To"}}}
	for _, env := range []string{"envelope-wsa.xml", "envelope-soap12-wsa.xml"} {
		t.Run(env, func(t *testing.T) {
			in := testutil.ReadTestdata(t, env)
			o := opts
			if env == "envelope-soap12-wsa.xml" {
				o.Parts = append([]Part{}, PartBody(), PartTimestamp(), PartBST())
			}
			signChecked(t, in, cred, o)
		})
	}
	t.Run("nested default namespaces", func(t *testing.T) {
		in := []byte(`<e:Envelope xmlns:e="` + NSSOAP11 + `" xmlns="urn:outer" xmlns:unused="urn:unused"><e:Header/>` +
			`<e:Body><a xmlns=""><b xmlns="urn:b" xmlns:p="urn:p"><p:c/></b></a></e:Body></e:Envelope>`)
		signChecked(t, in, cred, SignOptions{NoTransforms: true})
	})
	t.Run("xml:lang on the Envelope", func(t *testing.T) {
		in := []byte(`<e:Envelope xmlns:e="` + NSSOAP11 + `" xml:lang="es"><e:Body><x/></e:Body></e:Envelope>`)
		if _, err := Sign(context.Background(), in, cred, SignOptions{NoTransforms: true}); CodeOf(err) != CodeUnsupported {
			t.Errorf("got %v, want unsupported", err)
		}
	})
}

// TestHeaderOnly: without a Signature, Sign needs no credential, adds the
// UsernameToken (and the Timestamp unless told not to), and refuses parts
// to sign and an empty header.
func TestHeaderOnly(t *testing.T) {
	in := testutil.ReadTestdata(t, "envelope-soap12.xml")
	ut := &UsernameToken{Username: "u", Password: "p"}
	res, err := Sign(context.Background(), in, Credential{}, SignOptions{NoSignature: true, UsernameToken: ut, TimestampMillis: true, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(res.Envelope); err != nil {
		t.Fatal(err)
	}
	sec := doc.FindElement("//Header/Security")
	if got := childTags(sec); got != "UsernameToken,Timestamp" {
		t.Errorf("Security holds %s", got)
	}
	if mu, _ := attrNS(sec, NSSOAP12, "mustUnderstand"); mu != "true" {
		t.Errorf("mustUnderstand %q", mu)
	}
	if res.SignatureMethod != "" || res.References != nil {
		t.Error("a header-only result reports a signature")
	}
	for _, tc := range []struct {
		name string
		opts SignOptions
	}{
		{"parts", SignOptions{NoSignature: true, UsernameToken: ut, Parts: []Part{PartBody()}}},
		{"empty", SignOptions{NoSignature: true, NoTimestamp: true}},
		{"required Timestamp part without Timestamp", SignOptions{NoTimestamp: true, Parts: []Part{PartBody(), PartTimestamp()}}},
		{"bad zone", SignOptions{NoSignature: true, UsernameToken: ut, TimestampZone: "+01:00"}},
		{"PrefixList without Transforms", SignOptions{NoTransforms: true, InclusivePrefixes: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred := Credential{}
			if !tc.opts.NoSignature {
				cred = loadCredential(t, "rsa2048")
			}
			if _, err := Sign(context.Background(), in, cred, tc.opts); err == nil {
				t.Error("accepted")
			}
		})
	}
	// An optional Timestamp part is skipped.
	cred := loadCredential(t, "rsa2048")
	res2, _ := signOK(t, in, cred, SignOptions{NoTimestamp: true, Parts: []Part{PartBody(), {Space: NSWSU, Local: "Timestamp", Optional: true}}})
	if len(res2.References) != 1 || strings.Contains(string(res2.Envelope), "Timestamp") {
		t.Errorf("references %v", res2.References)
	}
}

// TestHeaderOnlyExtendsSecurity: a UsernameToken-only profile extends the
// caller's Security header even when it already holds a Timestamp, since
// it adds none.
func TestHeaderOnlyExtendsSecurity(t *testing.T) {
	in := []byte(`<s:Envelope xmlns:s="` + NSSOAP11 + `"><s:Header><wsse:Security xmlns:wsse="` + NSWSSE + `" xmlns:wsu="` + NSWSU + `">` +
		`<wsu:Timestamp><wsu:Created>2026-11-29T12:00:00Z</wsu:Created></wsu:Timestamp></wsse:Security></s:Header><s:Body/></s:Envelope>`)
	opts, _ := Preset(PresetSUNATPE)
	opts.UsernameToken.Username, opts.UsernameToken.Password = "u", "p"
	res, err := Sign(context.Background(), in, Credential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(res.Envelope); err != nil {
		t.Fatal(err)
	}
	if got := childTags(doc.FindElement("//Header/Security")); got != "Timestamp,UsernameToken" || len(doc.FindElements("//Security")) != 1 {
		t.Errorf("Security holds %s", got)
	}
}
