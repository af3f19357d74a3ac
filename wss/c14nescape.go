package wss

// The escaping rules of Canonical XML 1.0 §2.3 (shared by the exclusive
// variant) for the streaming canonicaliser.

// Escape classes: bit 1 = escaped in text, bit 2 = escaped in attribute values.
const (
	escText = 1 << iota
	escAttr
)

var escTable = [256]uint8{
	'&':  escText | escAttr,
	'<':  escText | escAttr,
	'>':  escText,
	'"':  escAttr,
	'\t': escAttr,
	'\n': escAttr,
	'\r': escText | escAttr,
}

func escapeFor(c byte) string {
	switch c {
	case '&':
		return "&amp;"
	case '<':
		return "&lt;"
	case '>':
		return "&gt;"
	case '"':
		return "&quot;"
	case '\t':
		return "&#x9;"
	case '\n':
		return "&#xA;"
	default: // '\r'
		return "&#xD;"
	}
}
