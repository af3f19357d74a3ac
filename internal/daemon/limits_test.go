package daemon

import (
	"testing"

	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// TestWSSLimits: every [limits] setting of the XML engine reaches wss.Limits.
func TestWSSLimits(t *testing.T) {
	got := wssLimits(config.Limits{MaxBodyBytes: 1, MaxDepth: 2, MaxElements: 3, XMLLimits: config.XMLLimits{
		MaxAttributes: 4, MaxNamespacesInScope: 5, MaxNamespaceDecls: 6, MaxNameBytes: 7, MaxTextBytes: 8, MaxAttrValueBytes: 9}})
	want := wss.Limits{MaxBytes: 1, MaxDepth: 2, MaxElements: 3, MaxAttributes: 4, MaxNamespacesInScope: 5, MaxNamespaceDecls: 6,
		MaxNameBytes: 7, MaxTextBytes: 8, MaxAttrValueBytes: 9}
	if got != want {
		t.Fatalf("wssLimits = %+v, want %+v", got, want)
	}
}
