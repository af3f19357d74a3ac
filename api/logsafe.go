package api

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLoggedBytes bounds each client-supplied string written to the logs and
// audit events.
const maxLoggedBytes = 128

// logSafe returns a client-supplied string fit for a log line: at most
// maxLoggedBytes of it (cut on a character boundary), with every control,
// non-printable and non-ASCII character and every quote and backslash
// escaped as in a Go string literal, so that it can neither forge a line
// nor a field in any log format, and a note of the length when it was cut.
func logSafe(s string) string {
	if plainASCII(s) {
		return s // what logSafeQuoted returns for it, without a copy
	}
	return logSafeQuoted(s)
}

// logSafeQuoted is logSafe's work for any string.
func logSafeQuoted(s string) string {
	cut := len(s) > maxLoggedBytes
	t := s
	if cut {
		n := maxLoggedBytes
		for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
			n-- // do not split a character
		}
		t = s[:n]
	}
	q := strconv.QuoteToASCII(t)
	q = q[1 : len(q)-1]
	if cut {
		var b strings.Builder
		b.WriteString(q)
		b.WriteString("...(")
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteString(" bytes)")
		return b.String()
	}
	return q
}

// maxLoggedErrorBytes bounds an error text in a log line; errors may quote
// parts of a request.
const maxLoggedErrorBytes = 1024

// logSafeErr is logSafe for error texts, with a larger bound.
func logSafeErr(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > maxLoggedErrorBytes {
		s = s[:maxLoggedErrorBytes] + "...(" + strconv.Itoa(len(err.Error())) + " bytes)"
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// plainASCII reports whether s is at most maxLoggedBytes of printable
// ASCII without quote or backslash: the strings (profile and key names)
// that logSafe returns as they are.
func plainASCII(s string) bool {
	if len(s) > maxLoggedBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
