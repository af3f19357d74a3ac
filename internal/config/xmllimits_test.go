package config

import (
	"strings"
	"testing"
)

// TestXMLLimits: the XML limits are read from [limits], absent ones stay 0
// (the engine's default), and a value too small is refused by field name.
func TestXMLLimits(t *testing.T) {
	c, err := Load(writeConfig(t, good+`
[limits]
max_attributes = 64
max_namespaces_in_scope = 100
max_namespace_declarations = 5000
max_name_bytes = 200
max_text_bytes = 4194304
`, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	want := XMLLimits{MaxAttributes: 64, MaxNamespacesInScope: 100, MaxNamespaceDecls: 5000, MaxNameBytes: 200, MaxTextBytes: 4 << 20}
	if c.Limits.XMLLimits != want {
		t.Errorf("limits %+v, want %+v", c.Limits.XMLLimits, want)
	}

	_, err = Load(writeConfig(t, good+`
[limits]
max_attributes = 3
max_namespaces_in_scope = -1
max_namespace_declarations = 1
max_name_bytes = 10
max_text_bytes = 100
max_attribute_value_bytes = 5
`, 0o600))
	if err == nil {
		t.Fatal("limits too small accepted")
	}
	for _, f := range []string{"limits.max_attributes:", "limits.max_namespaces_in_scope:", "limits.max_namespace_declarations:",
		"limits.max_name_bytes:", "limits.max_text_bytes:", "limits.max_attribute_value_bytes:"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error lacks %q:\n%v", f, err)
		}
	}
}

// TestXMLLimitsDefaultInEngine: absent XML limits stay 0, for the engine
// to apply its defaults (defined there only); a value too small is refused.
func TestXMLLimitsDefaultInEngine(t *testing.T) {
	c, err := Load(writeConfig(t, good, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxDepth != 0 || c.Limits.MaxElements != 0 || c.Limits.XMLLimits != (XMLLimits{}) {
		t.Errorf("absent XML limits defaulted in config: %+v", c.Limits)
	}
	_, err = Load(writeConfig(t, good+"[limits]\nmax_depth = 4\nmax_elements = -1\n", 0o600))
	if err == nil || !strings.Contains(err.Error(), "limits.max_depth:") || !strings.Contains(err.Error(), "limits.max_elements:") {
		t.Errorf("too small max_depth and max_elements: %v", err)
	}
}
