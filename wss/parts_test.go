package wss

// PartUsernameToken is the wsse:UsernameToken of the Security header, as a
// part to sign (the tests sign it; no preset does).
func PartUsernameToken() Part { return Part{Space: NSWSSE, Local: "UsernameToken"} }
