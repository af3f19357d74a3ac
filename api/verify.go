package api

import "net/http"

// VerifyProfile is a named verification policy. (Filled in by the
// verification work, issue #6.)
type VerifyProfile struct {
	Access Access
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) error {
	return &Error{Status: http.StatusNotFound, Code: CodeUnknownProfile, Detail: "no such profile"}
}
