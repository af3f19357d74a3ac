package wss

// Namespace URIs and URIs of value and encoding types used on the wire.
const (
	NSSOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NSSOAP12 = "http://www.w3.org/2003/05/soap-envelope"
	NSWSSE   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSWSU    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSWSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
	NSDSig   = "http://www.w3.org/2000/09/xmldsig#"
	NSDSig11 = "http://www.w3.org/2009/xmldsig11#"
	NSXMLNS  = "http://www.w3.org/2000/xmlns/"
	NSXML    = "http://www.w3.org/XML/1998/namespace"
	NSXSI    = "http://www.w3.org/2001/XMLSchema-instance"

	// X.509 Token Profile 1.1 value types and the SOAP Message Security encoding type.
	ValueTypeX509v3      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
	ValueTypeX509PKIPath = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1"
	EncodingBase64       = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

	// Value types of wsse:KeyIdentifier (X.509 Token Profile 1.1 §3.2,
	// SOAP Message Security 1.1 §7.3).
	ValueTypeSKI            = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
	ValueTypeThumbprintSHA1 = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"

	// NSWSA is the WS-Addressing 1.0 namespace.
	NSWSA = "http://www.w3.org/2005/08/addressing"
)

// soapVersion tells SOAP 1.1 from 1.2 by the Envelope's namespace.
type soapVersion struct {
	ns             string
	mustUnderstand string // the attribute value meaning "true"
}

var (
	soap11 = soapVersion{ns: NSSOAP11, mustUnderstand: "1"}
	soap12 = soapVersion{ns: NSSOAP12, mustUnderstand: "true"}
)
