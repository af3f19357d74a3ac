package api

import "net/http"

// EncryptProfile is a named encryption policy. (Filled in by the encryption
// work, issue #7.)
type EncryptProfile struct {
	Access Access
}

// DecryptProfile is a named decryption policy bound to a key.
type DecryptProfile struct {
	Key    string
	Access Access
}

func (s *Server) handleEncrypt(w http.ResponseWriter, r *http.Request) error {
	return &Error{Status: http.StatusNotFound, Code: CodeUnknownProfile, Detail: "no such profile"}
}

func (s *Server) handleDecrypt(w http.ResponseWriter, r *http.Request) error {
	return &Error{Status: http.StatusNotFound, Code: CodeUnknownProfile, Detail: "no such profile"}
}
