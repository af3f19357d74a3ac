module github.com/wssignd/wssignd

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/ThalesGroup/crypto11 v1.6.2
	github.com/beevik/etree v1.8.1
	github.com/miekg/pkcs11 v1.1.2
	github.com/russellhaering/goxmldsig v1.6.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/jonboulle/clockwork v0.5.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/thales-e-security/pool v0.0.2 // indirect
)
