package api

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/wssignd/wssignd/wss"
)

// HeaderSignatureConfirmation carries, on a sign request for a profile with
// signature_confirmation, the ds:SignatureValue (base64, one per header or
// comma-separated) of each signature of the request being answered, or
// "unsigned" when that request carried none.
const HeaderSignatureConfirmation = "Wssignd-Signature-Confirmation"

// confirmValues reads HeaderSignatureConfirmation. A profile that confirms
// needs it (a response without the confirmation would break the policy);
// a profile that does not refuses it (a request cannot widen its profile).
func confirmValues(r *http.Request, confirm bool) ([][]byte, error) {
	var items []string
	for _, h := range r.Header.Values(HeaderSignatureConfirmation) {
		for _, v := range strings.Split(h, ",") {
			if v = strings.TrimSpace(v); v != "" {
				items = append(items, v)
			}
		}
	}
	bad := func(detail string) error {
		return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: detail}
	}
	switch {
	case !confirm && len(items) > 0:
		return nil, bad("the profile sends no SignatureConfirmation; remove " + HeaderSignatureConfirmation)
	case !confirm:
		return nil, nil
	case len(items) == 0:
		return nil, bad("the profile confirms the answered request's signatures: give each SignatureValue, or \"unsigned\", in " + HeaderSignatureConfirmation)
	case len(items) == 1 && items[0] == "unsigned":
		return [][]byte{}, nil
	case len(items) > wss.MaxConfirmations:
		return nil, bad("too many signature values to confirm")
	}
	values := make([][]byte, 0, len(items))
	for _, v := range items {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 || v == "unsigned" {
			return nil, bad(HeaderSignatureConfirmation + " holds a value that is not a base64 SignatureValue (or \"unsigned\" alone)")
		}
		values = append(values, b)
	}
	return values, nil
}
