package main

import (
	"context"
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// buildProfiles turns config profiles into API profiles, resolving user and
// group names and checking each profile's algorithms against its key where
// the key's token is online.
func buildProfiles(c *config.Config, ks *keyStore) (map[string]*api.Profile, error) {
	out := map[string]*api.Profile{}
	var probs []string
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := c.Profiles[name]
		ap := &api.Profile{Key: p.Key, Sign: wss.SignOptions{
			SignatureMethod: p.SignatureMethod,
			DigestMethod:    p.DigestMethod,
			AllowSHA1:       p.AllowSHA1,
			TTL:             p.TimestampTTL.Duration,
		}}
		for _, s := range p.Parts {
			space, local, opt, err := config.ParsePart(s)
			if err != nil {
				probs = append(probs, fmt.Sprintf("profiles.%s.parts: %v", name, err))
				continue
			}
			ap.Sign.Parts = append(ap.Sign.Parts, wss.Part{Space: space, Local: local, Optional: opt})
		}
		acc, err := resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			probs = append(probs, fmt.Sprintf("profiles.%s: %v", name, err))
		}
		ap.Access = acc
		if cred, err := ks.Credential(context.Background(), p.Key); err == nil {
			pub := cred.Signer.Public()
			sm, dm := ap.Sign.SignatureMethod, ap.Sign.DigestMethod
			if sm == "" {
				sm, _ = wss.DefaultSignatureMethod(pub)
			}
			if dm == "" {
				dm = wss.AlgSHA256
			}
			if err := wss.CheckAlgorithms(pub, sm, dm, ap.Sign.AllowSHA1); err != nil {
				probs = append(probs, fmt.Sprintf("profiles.%s: key %s: %v", name, p.Key, err))
			}
		}
		out[name] = ap
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return out, nil
}

func resolveAccess(users, groups []string) (api.Access, error) {
	var a api.Access
	for _, u := range users {
		if u == "*" {
			a.Anyone = true
			continue
		}
		if n, err := strconv.ParseUint(u, 10, 32); err == nil {
			a.UIDs = append(a.UIDs, uint32(n))
			continue
		}
		usr, err := user.Lookup(u)
		if err != nil {
			return a, fmt.Errorf("allow_users: unknown user %q", u)
		}
		n, _ := strconv.ParseUint(usr.Uid, 10, 32)
		a.UIDs = append(a.UIDs, uint32(n))
	}
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.GIDs = append(a.GIDs, uint32(n))
			continue
		}
		grp, err := user.LookupGroup(g)
		if err != nil {
			return a, fmt.Errorf("allow_groups: unknown group %q", g)
		}
		n, _ := strconv.ParseUint(grp.Gid, 10, 32)
		a.GIDs = append(a.GIDs, uint32(n))
	}
	return a, nil
}
