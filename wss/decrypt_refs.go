package wss

// Which EncryptedData an EncryptedKey decrypts. WS-Security 1.1 §9.3 allows
// two forms: the EncryptedKey's own xenc:ReferenceList, or a standalone
// xenc:ReferenceList child of the Security header whose EncryptedData each
// say in their ds:KeyInfo which key decrypts them, here the EncryptedKey
// of the message:
//
//   - a wsse:SecurityTokenReference holding a wsse:Reference to the
//     EncryptedKey's Id (WSS 1.1 §7.2, ValueType #EncryptedKey when given);
//   - a ds:KeyName equal to the EncryptedKey's xenc:CarriedKeyName (XML
//     Encryption 1.1 §3.5.1).
//
// An EncryptedData of a standalone list that designates another key is
// another recipient's and is left alone; one whose KeyInfo designates no
// key is left alone too: the key of a standalone list is never guessed.

import (
	"errors"
	"fmt"
	"strings"
)

// vtEncryptedKey is the WSS 1.1 token type of an EncryptedKey.
const vtEncryptedKey = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"

// dataRef is one DataReference and the EncryptedData it names.
type dataRef struct {
	uri string
	ed  elemRef
}

// dataReferences returns the EncryptedData ek decrypts, in document order
// of their DataReferences (its own ReferenceList first), and the standalone
// ReferenceLists every DataReference of which designates ek (they are
// removed with ek once decrypted).
func dataReferences(ek elemRef) ([]dataRef, []elemRef, error) {
	var out []dataRef
	if rl := ek.child(NSXEnc, "ReferenceList"); rl.ok() {
		refs, err := readReferenceList(rl)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, refs...)
	}
	ekID, _ := ek.attrAnyNS("Id")
	carried := ""
	if cn := ek.child(NSXEnc, "CarriedKeyName"); cn.ok() {
		carried = strings.TrimSpace(cn.leadText())
	}
	var lists []elemRef
	for _, rl := range ek.parent().children() {
		if !rl.is(NSXEnc, "ReferenceList") {
			continue
		}
		refs, err := readReferenceList(rl)
		if err != nil {
			return nil, nil, err
		}
		all := len(refs) > 0
		for _, r := range refs {
			if designates(r.ed, ekID, carried) {
				out = append(out, r)
			} else {
				all = false
			}
		}
		if all {
			lists = append(lists, rl)
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no ReferenceList names data encrypted with the EncryptedKey")
	}
	return out, lists, nil
}

// readReferenceList reads the DataReferences of a ReferenceList; each must
// name an EncryptedData by a same-document reference.
func readReferenceList(rl elemRef) ([]dataRef, error) {
	var out []dataRef
	for _, c := range rl.children() {
		if !c.is(NSXEnc, "DataReference") {
			return nil, fmt.Errorf("unexpected %s in ReferenceList", c.qname())
		}
		uri, _ := c.attrAnyNS("URI")
		if !strings.HasPrefix(uri, "#") || len(uri) < 2 {
			return nil, fmt.Errorf("DataReference %q is not a same-document reference", uri)
		}
		ed := rl.t.byID(uri[1:])
		if !ed.ok() || !ed.is(NSXEnc, "EncryptedData") {
			return nil, fmt.Errorf("DataReference %q does not name an EncryptedData", uri)
		}
		out = append(out, dataRef{uri: uri, ed: ed})
	}
	return out, nil
}

// designates reports whether the EncryptedData's KeyInfo names the
// EncryptedKey whose Id is ekID and whose CarriedKeyName is carried.
func designates(ed elemRef, ekID, carried string) bool {
	ki := ed.child(NSDSig, "KeyInfo")
	if !ki.ok() {
		return false
	}
	for _, c := range ki.children() {
		switch {
		case c.is(NSWSSE, "SecurityTokenReference"):
			for _, r := range c.children() {
				if !r.is(NSWSSE, "Reference") {
					continue
				}
				uri := r.attrValue("URI")
				vt := r.attrValue("ValueType")
				if ekID != "" && uri == "#"+ekID && (vt == "" || vt == vtEncryptedKey) {
					return true
				}
			}
		case c.is(NSDSig, "KeyName"):
			if carried != "" && strings.TrimSpace(c.leadText()) == carried {
				return true
			}
		}
	}
	return false
}

// keyNameIn reports whether the KeyInfo holds a ds:KeyName equal to one of
// names.
func keyNameIn(ki elemRef, names []string) bool {
	if len(names) == 0 {
		return false
	}
	for _, c := range ki.children() {
		if !c.is(NSDSig, "KeyName") {
			continue
		}
		n := strings.TrimSpace(c.leadText())
		for _, want := range names {
			if n != "" && n == want {
				return true
			}
		}
	}
	return false
}
