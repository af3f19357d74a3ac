// Package clients holds the adapters that give SOAP stacks WS-Security by
// wssignd: Python zeep (python/), PHP SoapClient (php/) and the Node soap
// package (node/). It has no Go code of its own; its test builds the daemon,
// a SoftHSM2 token and a spyne SOAP service, and drives each stack's own
// client through its adapter, running the README's examples as they stand.
package clients
