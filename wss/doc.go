// Package wss builds and checks OASIS WS-Security 1.1 headers on SOAP 1.1 and
// SOAP 1.2 envelopes: [Sign], [Verify], [Encrypt] and [Decrypt], with the
// X.509 Token Profile, UsernameToken, XML Signature (exclusive C14N) and XML
// Encryption 1.1.
//
// # Keys
//
// wss never sees key material. A [Credential] carries a [crypto.Signer] plus
// the certificate chain; [Decrypt] takes a [crypto.Decrypter]. Where the
// private key lives — an HSM, a smart card, memory in tests — is the
// caller's business.
//
// # Byte preservation
//
// [Sign] and [Encrypt] splice what they add into the caller's bytes:
// everything else in the envelope is returned byte for byte, never
// re-serialised or re-indented.
//
// # Untrusted input
//
// Every envelope is scanned under [Limits] before any cryptography: DOCTYPE
// and entity declarations are refused, size, depth and element count are
// bounded, Id values must be unique and the SOAP structure sane. [Verify]
// checks what a signature covers by node identity (signature-wrapping
// defences), follows only same-document references, allow-lists algorithms
// and transforms, and applies Timestamp and replay rules. Every failure is
// an [*Error] with a stable [Code]; a verification verdict carries a code
// too.
//
// # Canonicalisation
//
// Exclusive XML Canonicalization 1.0 is implemented here from the W3C
// specification, streaming over the package's own tokenizer, and checked
// byte for byte against libxml2 and against an etree-based oracle in tests;
// goxmldsig's canonicaliser sorts attributes wrongly and mutates its input.
package wss
