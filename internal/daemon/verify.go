package daemon

import (
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// replayCaches keeps the replay cache of each verify profile for the life
// of the process, so that a reload (a new generation of profiles) does not
// forget the messages verified before it. A new replay_cache_size takes
// effect at the next start: a new cache would not know what the old one
// saw. A cache knows nothing from before it began; the API refuses
// messages created before then (api.VerifyProfile.ReplaySince).
type replayCaches struct {
	mu sync.Mutex
	m  map[string]replayCache
}

type replayCache struct {
	cache *wss.ReplayCache
	since time.Time
}

func newReplayCaches() *replayCaches { return &replayCaches{m: map[string]replayCache{}} }

// get returns the cache of verify profile name (made with size entries
// when the process first built the profile) and when it began.
func (r *replayCaches) get(name string, size int) (*wss.ReplayCache, time.Time) {
	if r == nil {
		return wss.NewReplayCache(size), time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.m[name]
	if !ok {
		rc = replayCache{cache: wss.NewReplayCache(size), since: time.Now()}
		r.m[name] = rc
	}
	return rc.cache, rc.since
}

// buildVerifyProfiles turns [verify.NAME] tables into API verify profiles:
// trust stores from the certificate files, required parts, Timestamp rules,
// allow-lists and the profile's replay cache from replays (shared by every
// generation of the process; nil makes new ones).
func buildVerifyProfiles(s *seams, c *config.Config, replays *replayCaches) (map[string]*api.VerifyProfile, error) {
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
		acc, err := s.resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", f, err))
		}
		var since time.Time
		opts.Replay, since = replays.get(name, p.ReplayCacheSize)
		out[name] = &api.VerifyProfile{Verify: opts, Access: acc, ReplaySince: since}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return out, nil
}
