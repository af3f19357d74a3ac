package client_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/client"
)

// jsonFields lists the JSON members of a struct type: name and Go type.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name+" "+tag+" "+f.Type.String())
	}
	slices.Sort(out)
	return out
}

// TestWireTypes: the client decodes exactly the JSON documents the server
// encodes (same members, tags and types), so the two cannot drift apart.
func TestWireTypes(t *testing.T) {
	for _, tc := range []struct{ server, client any }{
		{api.Problem{}, client.Problem{}},
		{api.KeyInfo{}, client.KeyInfo{}},
		{api.RawSignRequest{}, client.RawSignRequest{}},
		{api.RawSignResponse{}, client.RawSignResponse{}},
	} {
		s, c := jsonFields(reflect.TypeOf(tc.server)), jsonFields(reflect.TypeOf(tc.client))
		if len(s) == 0 || !slices.Equal(s, c) {
			t.Errorf("%T and %T differ on the wire:\n server %q\n client %q", tc.server, tc.client, s, c)
		}
	}
	if api.RecipientCertHeader != client.RecipientCertHeader {
		t.Errorf("recipient header: server %q, client %q", api.RecipientCertHeader, client.RecipientCertHeader)
	}
}
