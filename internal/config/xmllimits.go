package config

// XMLLimits bound the shape of an envelope, in the [limits] table beside
// max_body_bytes, max_depth and max_elements. The XML engine enforces them
// on every route before any other parsing or cryptography; a message over
// one gets 413 too-complex. 0 (or absent) takes the built-in default given
// for each field, which fits every real SOAP message.
type XMLLimits struct {
	// MaxAttributes is the most attributes one element may carry,
	// namespace declarations included. Default 256.
	MaxAttributes int `toml:"max_attributes"`
	// MaxNamespacesInScope is the most namespace declarations in force at
	// any element: its own and its ancestors'. Default 512.
	MaxNamespacesInScope int `toml:"max_namespaces_in_scope"`
	// MaxNamespaceDecls is the most namespace declarations in one
	// envelope. Default 100000.
	MaxNamespaceDecls int `toml:"max_namespace_declarations"`
	// MaxNameBytes is the longest element or attribute name (prefix
	// included) in bytes. Default 1024.
	MaxNameBytes int `toml:"max_name_bytes"`
	// MaxTextBytes is the largest text node, CDATA section, comment or
	// processing instruction in bytes, as written. Default 16 MiB (inline
	// binary content is common in SOAP).
	MaxTextBytes int `toml:"max_text_bytes"`
	// MaxAttrValueBytes is the largest attribute value in bytes, as
	// written. Default 1 MiB.
	MaxAttrValueBytes int `toml:"max_attribute_value_bytes"`
}

// validate reports values that are negative or too small for any SOAP
// message with a WS-Security header; 0 means the default.
func (l XMLLimits) validate(bad func(field, format string, args ...any)) {
	for _, f := range []struct {
		name     string
		v, least int
	}{
		{"limits.max_attributes", l.MaxAttributes, 16},
		{"limits.max_namespaces_in_scope", l.MaxNamespacesInScope, 16},
		{"limits.max_namespace_declarations", l.MaxNamespaceDecls, 16},
		{"limits.max_name_bytes", l.MaxNameBytes, 64},
		{"limits.max_text_bytes", l.MaxTextBytes, 1024},
		{"limits.max_attribute_value_bytes", l.MaxAttrValueBytes, 1024},
	} {
		if f.v != 0 && f.v < f.least {
			bad(f.name, "must be 0 (the default) or at least %d", f.least)
		}
	}
}
