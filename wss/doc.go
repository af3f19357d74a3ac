// Package wss builds and checks OASIS WS-Security 1.1 headers on SOAP 1.1 and
// SOAP 1.2 envelopes.
//
// # Keys
//
// wss never sees key material. A [Credential] carries a [crypto.Signer] (and,
// for decryption, a [crypto.Decrypter]) plus the certificate chain; where the
// private key lives — an HSM, a smart card, memory in tests — is the caller's
// business.
//
// # Byte preservation
//
// [Sign] splices the Security header and the wsu:Id attributes it needs into
// the caller's bytes: everything else in the envelope is returned byte for
// byte, never re-serialised or re-indented.
//
// # Untrusted input
//
// Every envelope is scanned once under [Limits] before any cryptography:
// DOCTYPE and entity declarations are refused, and size, depth and element
// count are bounded. Every failure is an [*Error] with a stable [Code].
package wss
