package main

import (
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// buildVerifyProfiles turns [verify.NAME] tables into API verify profiles:
// trust stores from the certificate files, required parts, Timestamp rules,
// allow-lists and a replay cache of its own per profile.
func buildVerifyProfiles(c *config.Config) (map[string]*api.VerifyProfile, error) {
	out := map[string]*api.VerifyProfile{}
	var probs []string
	names := slices.Sorted(maps.Keys(c.Verify))
	for _, name := range names {
		p := c.Verify[name]
		f := "verify." + name
		read := func(files []string) []*x509.Certificate {
			var certs []*x509.Certificate
			for _, file := range files {
				cs, err := config.ReadCertificates(file)
				if err != nil {
					probs = append(probs, fmt.Sprintf("%s: %v", f, err))
				}
				certs = append(certs, cs...)
			}
			return certs
		}
		trust, err := wss.NewTrustStore(wss.TrustConfig{
			Pinned: read(p.TrustedCerts), Roots: read(p.CACerts), Intermediates: read(p.IntermediateCerts), Signers: read(p.SignerCerts),
			SubjectPattern: p.SubjectPattern, IssuerPattern: p.IssuerPattern,
		})
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", f, err))
		}
		opts := wss.VerifyOptions{
			Trust:                   trust,
			AllowUnsignedAddressing: p.AllowUnsignedAddressing,
			RequireTimestamp:        p.RequireTimestamp,
			FutureSkew:              p.FutureSkew.Duration,
			MaxAge:                  p.MaxAge.Duration,
			MaxLifetime:             p.MaxLifetime.Duration,
			Replay:                  wss.NewReplayCache(p.ReplayCacheSize),
			AllowedSignatureMethods: p.SignatureMethods,
			AllowedDigestMethods:    p.DigestMethods,
			AllowedC14NMethods:      p.C14NMethods,
			AllowSHA1:               p.AllowSHA1,
			AllowInclusiveC14N:      p.AllowInclusiveC14N,
			MaxReferences:           p.MaxReferences,
			UnsignedFaults:          p.UnsignedFaults,
			Actor:                   p.Actor,
		}
		for _, s := range p.Parts {
			space, local, opt, err := config.ParsePart(s)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s.parts: %v", f, err))
				continue
			}
			opts.RequiredParts = append(opts.RequiredParts, wss.Part{Space: space, Local: local, Optional: opt})
		}
		acc, err := resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", f, err))
		}
		out[name] = &api.VerifyProfile{Verify: opts, Access: acc}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return out, nil
}
