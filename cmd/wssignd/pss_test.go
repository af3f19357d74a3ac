package main

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/etreec14n"
	"github.com/wssignd/wssignd/wss"
)

// pssVerify checks every Reference digest and the RSA-PSS signature value
// with crypto/rsa, over the canonical forms wss computes (which xmlsec1
// checks for every other profile).
func pssVerify(signed []byte, pub *rsa.PublicKey) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(signed); err != nil {
		return err
	}
	ids := map[string]*etree.Element{}
	for _, el := range doc.FindElements("//*") {
		for _, a := range el.Attr {
			if a.Key == "Id" {
				ids[a.Value] = el
			}
		}
	}
	si := doc.FindElement("//Signature/SignedInfo")
	if si == nil {
		return fmt.Errorf("no SignedInfo")
	}
	for _, ref := range si.SelectElements("Reference") {
		el := ids[strings.TrimPrefix(ref.SelectAttrValue("URI", ""), "#")]
		if el == nil {
			return fmt.Errorf("reference %s not found", ref.SelectAttrValue("URI", ""))
		}
		if ref.SelectElement("DigestMethod").SelectAttrValue("Algorithm", "") != wss.AlgSHA256 {
			return fmt.Errorf("unexpected digest method")
		}
		h := crypto.SHA256.New()
		var pl []string
		if in := ref.FindElement("Transforms/Transform/InclusiveNamespaces"); in != nil {
			pl = strings.Fields(in.SelectAttrValue("PrefixList", ""))
		}
		if err := etreec14n.CanonicalizeExclusive(h, el, etreec14n.C14NOptions{InclusivePrefixes: pl}); err != nil {
			return err
		}
		if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != ref.SelectElement("DigestValue").Text() {
			return fmt.Errorf("digest of %s differs", ref.SelectAttrValue("URI", ""))
		}
	}
	if si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", "") != wss.AlgRSAPSSSHA256 {
		return fmt.Errorf("not RSA-PSS-SHA256")
	}
	h := crypto.SHA256.New()
	if err := etreec14n.CanonicalizeExclusive(h, si, etreec14n.C14NOptions{}); err != nil {
		return err
	}
	sv, err := base64.StdEncoding.DecodeString(doc.FindElement("//Signature/SignatureValue").Text())
	if err != nil {
		return err
	}
	return rsa.VerifyPSS(pub, crypto.SHA256, h.Sum(nil), sv, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}
