package daemon

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here, exercised on purpose.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// buildCryptProfiles turns [encrypt.NAME] and [decrypt.NAME] tables into API
// profiles. A decrypt profile's key must be an RSA key that decrypts; where
// its token is online, each allowed key transport is tried once with a
// random key (a self-test) and a transport the token refuses is reported
// in the log, so that operators learn it before the first message fails.
func buildCryptProfiles(s *seams, c *config.Config, ks *keyStore) (map[string]*api.EncryptProfile, map[string]*api.DecryptProfile, error) {
	enc := map[string]*api.EncryptProfile{}
	dec := map[string]*api.DecryptProfile{}
	var probs []string
	for _, name := range slices.Sorted(maps.Keys(c.Encrypt)) {
		p := c.Encrypt[name]
		ep, err := encryptProfile(s, p)
		if err != nil {
			probs = append(probs, fmt.Sprintf("encrypt.%s: %v", name, err))
			continue
		}
		enc[name] = ep
	}
	for _, name := range slices.Sorted(maps.Keys(c.Decrypt)) {
		p := c.Decrypt[name]
		dp, err := decryptProfile(s, p, ks, name)
		if err != nil {
			probs = append(probs, fmt.Sprintf("decrypt.%s: %v", name, err))
			continue
		}
		dec[name] = dp
	}
	if len(probs) > 0 {
		return nil, nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return enc, dec, nil
}

func xencURIs(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		u, err := wss.XEncAlgorithm(n)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func encryptProfile(s *seams, p *config.EncryptProfile) (*api.EncryptProfile, error) {
	acc, err := s.resolveAccess(p.AllowUsers, p.AllowGroups)
	if err != nil {
		return nil, err
	}
	ep := &api.EncryptProfile{Access: acc, AllowRecipientHeader: p.AllowRecipientHeader}
	o := &ep.Encrypt
	o.AllowCBC, o.AllowRSA15 = p.AllowCBC, p.AllowRSA15
	o.RecipientRef = wss.RecipientRef(p.KeyReference)
	uris, err := xencURIs([]string{p.DataAlgorithm, p.KeyTransport})
	if err != nil {
		return nil, err
	}
	o.DataAlgorithm, o.KeyTransport = uris[0], uris[1]
	if p.OAEPDigest != "" {
		if o.OAEPDigest, err = wss.XEncAlgorithm(p.OAEPDigest); err != nil {
			return nil, err
		}
	}
	if p.MGF != "" {
		if o.MGF, err = wss.XEncAlgorithm(p.MGF); err != nil {
			return nil, err
		}
	}
	for _, s := range p.Parts {
		space, local, opt, err := config.ParsePart(s)
		if err != nil {
			return nil, err
		}
		o.Parts = append(o.Parts, wss.Part{Space: space, Local: local, Optional: opt})
	}
	if p.RecipientCert != "" {
		certs, err := config.ReadCertificates(p.RecipientCert)
		if err != nil {
			return nil, err
		}
		if err := wss.CheckRecipient(certs[0], o.RecipientRef); err != nil {
			return nil, fmt.Errorf("recipient_cert: %v", err)
		}
		o.Recipient = certs[0]
	}
	if p.TrustAnchors != "" {
		certs, err := config.ReadCertificates(p.TrustAnchors)
		if err != nil {
			return nil, err
		}
		ep.TrustAnchors = x509.NewCertPool()
		for _, c := range certs {
			ep.TrustAnchors.AddCert(c)
		}
	}
	return ep, nil
}

func decryptProfile(s *seams, p *config.DecryptProfile, ks *keyStore, name string) (*api.DecryptProfile, error) {
	acc, err := s.resolveAccess(p.AllowUsers, p.AllowGroups)
	if err != nil {
		return nil, err
	}
	dp := &api.DecryptProfile{Key: p.Key, Access: acc}
	dp.Decrypt.Actor, dp.Decrypt.KeyNames = p.Actor, p.KeyNames
	if p.RequireSignedBody {
		dp.VerifyProfile = p.VerifyProfile
	}
	if dp.Decrypt.DataAlgorithms, err = xencURIs(p.DataAlgorithms); err != nil {
		return nil, err
	}
	if dp.Decrypt.KeyTransports, err = xencURIs(p.KeyTransports); err != nil {
		return nil, err
	}
	cred, err := ks.Credential(context.Background(), p.Key)
	if err != nil {
		return dp, nil // token offline: checked when it serves
	}
	d, ok := cred.Signer.(crypto.Decrypter)
	pub, isRSA := cred.Chain[0].PublicKey.(*rsa.PublicKey)
	if !ok || !isRSA {
		return nil, fmt.Errorf("key %s cannot decrypt: decryption needs an RSA key", p.Key)
	}
	for _, kt := range dp.Decrypt.KeyTransports {
		if err := selfTestTransport(d, pub, kt); err != nil {
			ks.log.Warn("the token cannot unwrap keys with this key transport; messages using it will fail",
				"profile", "decrypt."+name, "key", p.Key, "key_transport", kt, "err", err)
		}
	}
	return dp, nil
}

// selfTestTransport wraps a random 32-byte key for pub with the key
// transport's defaults (OAEP: SHA-1 digest and MGF1-SHA-1 for
// rsa-oaep-mgf1p, SHA-256 and MGF1-SHA-256 for rsa-oaep) and has d unwrap it.
func selfTestTransport(d crypto.Decrypter, pub *rsa.PublicKey, kt string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	var ct []byte
	var opts crypto.DecrypterOpts
	var err error
	switch kt {
	case wss.AlgRSA15:
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
		opts = &rsa.PKCS1v15DecryptOptions{}
	case wss.AlgRSAOAEPMGF1P:
		o := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
		ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, key, o)
		opts = o
	default:
		o := &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256}
		ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, key, o)
		opts = o
	}
	if err != nil {
		return err
	}
	got, err := d.Decrypt(rand.Reader, ct, opts)
	if err != nil {
		return err
	}
	if string(got) != string(key) {
		return fmt.Errorf("self-test unwrap returned a different key")
	}
	return nil
}
