package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// buildProfiles turns config profiles into API profiles, resolving user and
// group names and checking each profile's algorithms against its key where
// the key's token is online.
func buildProfiles(s *seams, c *config.Config, ks *keyStore) (map[string]*api.Profile, error) {
	out := map[string]*api.Profile{}
	var probs []string
	names := slices.Sorted(maps.Keys(c.Profiles))
	for _, name := range names {
		p := c.Profiles[name]
		opts, err := signOptions(p, c.File)
		if err != nil {
			probs = append(probs, fmt.Sprintf("profiles.%s: %v", name, err))
		}
		ap := &api.Profile{Key: p.Key, Sign: opts, Encrypt: p.Encrypt, EncryptBeforeSign: p.EncryptBeforeSign}
		acc, err := s.resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			probs = append(probs, fmt.Sprintf("profiles.%s: %v", name, err))
		}
		ap.Access = acc
		if opts.NoSignature {
			// No private-key use: nothing to check against the key.
		} else if cred, err := ks.Credential(context.Background(), p.Key); err == nil {
			if err := wss.CheckSignOptions(ap.Sign, cred); err != nil {
				probs = append(probs, fmt.Sprintf("profiles.%s: key %s: %v", name, p.Key, err))
			} else if err := checkMechanism(ks, p.Key, ap.Sign, cred); err != nil {
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

// signOptions starts from the profile's preset (if any) and applies every
// setting the profile names. It reads the UsernameToken password file, so it
// runs at startup and on reload only; configFile anchors a relative path.
func signOptions(p *config.Profile, configFile string) (wss.SignOptions, error) {
	var o wss.SignOptions
	if p.Preset != "" {
		var ok bool
		if o, ok = wss.Preset(p.Preset); !ok {
			return o, fmt.Errorf("unknown preset %q", p.Preset)
		}
	}
	if len(p.Parts) > 0 {
		o.Parts = nil
		for _, s := range p.Parts {
			space, local, opt, err := config.ParsePart(s)
			if err != nil {
				return o, fmt.Errorf("parts: %v", err)
			}
			o.Parts = append(o.Parts, wss.Part{Space: space, Local: local, Optional: opt})
		}
	}
	setString := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setBool := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	setString(&o.SignatureMethod, p.SignatureMethod)
	setString(&o.DigestMethod, p.DigestMethod)
	setBool(&o.AllowSHA1, p.AllowSHA1)
	if p.TimestampTTL.Duration != 0 {
		o.TTL = p.TimestampTTL.Duration
	}
	setBool(&o.TimestampMillis, p.TimestampMillis)
	if p.TimestampExpires != nil {
		o.NoExpires = !*p.TimestampExpires
	}
	setString(&o.TimestampZone, p.TimestampZone)
	setNot := func(dst *bool, v *bool) {
		if v != nil {
			*dst = !*v
		}
	}
	setNot(&o.NoTimestamp, p.Timestamp)
	setNot(&o.NoSignature, p.Signature)
	setNot(&o.NoTransforms, p.ReferenceTransforms)
	setNot(&o.NoMustUnderstand, p.MustUnderstand)
	setBool(&o.SignatureConfirmation, p.SignatureConfirmation)
	if p.TokenReference != "" {
		o.TokenReference = wss.TokenReference(p.TokenReference)
	}
	setBool(&o.IncludeBST, p.IncludeBST)
	switch p.BSTValueType {
	case "X509v3":
		o.BSTValueType = wss.ValueTypeX509v3
	case "X509PKIPathv1":
		o.BSTValueType = wss.ValueTypeX509PKIPath
	}
	setBool(&o.InclusivePrefixes, p.InclusivePrefixes)
	setString(&o.Actor, p.Actor)
	if p.Layout != "" {
		o.Layout = wss.Layout(p.Layout)
	}
	setString(&o.SOAPVersion, p.SOAPVersion)
	if p.Username != "" {
		pw, err := p.ReadPassword(configFile)
		if err != nil {
			return o, err
		}
		// The password type: the profile's, else the preset's, else digest.
		digest := p.PasswordType != "text"
		if p.PasswordType == "" && o.UsernameToken != nil {
			digest = o.UsernameToken.Digest
		}
		o.UsernameToken = &wss.UsernameToken{Username: p.Username, Password: pw, Digest: digest}
	}
	if o.NoSignature {
		// No key to check the options against: check them alone.
		if err := wss.CheckSignOptions(o, wss.Credential{}); err != nil {
			return o, err
		}
	}
	return o, nil
}

// resolveAccess turns user and group names or numbers into an access list.
// It fails closed: any name that does not resolve to exactly one numeric
// id refuses the whole list, so a lookup failure can never put a wrong id
// (such as 0, root) on it.
func (s *seams) resolveAccess(users, groups []string) (api.Access, error) {
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
		usr, err := s.lookupUser(u)
		if err != nil {
			return api.Access{}, fmt.Errorf("allow_users: cannot resolve user %q: %v", u, err)
		}
		n, err := parseID(usr.Uid)
		if err != nil {
			return api.Access{}, fmt.Errorf("allow_users: user %q has uid %q: %v", u, usr.Uid, err)
		}
		a.UIDs = append(a.UIDs, n)
	}
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.GIDs = append(a.GIDs, uint32(n))
			continue
		}
		grp, err := s.lookupGroup(g)
		if err != nil {
			return api.Access{}, fmt.Errorf("allow_groups: cannot resolve group %q: %v", g, err)
		}
		n, err := parseID(grp.Gid)
		if err != nil {
			return api.Access{}, fmt.Errorf("allow_groups: group %q has gid %q: %v", g, grp.Gid, err)
		}
		a.GIDs = append(a.GIDs, n)
	}
	return a, nil
}

// parseID parses a numeric uid or gid as the name service returned it.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("not a 32-bit unsigned number")
	}
	return uint32(n), nil
}

// buildRawKeys lists the keys open to raw signing and who may use each.
func buildRawKeys(s *seams, c *config.Config) (map[string]api.Access, error) {
	out := map[string]api.Access{}
	for name, k := range c.Keys {
		if len(k.RawSignUsers) == 0 && len(k.RawSignGroups) == 0 {
			continue
		}
		acc, err := s.resolveAccess(k.RawSignUsers, k.RawSignGroups)
		if err != nil {
			return nil, fmt.Errorf("keys.%s: %v", name, err)
		}
		out[name] = acc
	}
	return out, nil
}

// checkMechanism asks the key's token (C_GetMechanismInfo) whether it can
// make the profile's signatures with this key.
func checkMechanism(ks *keyStore, key string, o wss.SignOptions, cred wss.Credential) error {
	sm := o.SignatureMethod
	if sm == "" {
		var err error
		if sm, err = wss.DefaultSignatureMethod(cred.Signer.Public()); err != nil {
			return err
		}
	}
	so, ok := wss.SignerOpts(sm)
	if !ok {
		return fmt.Errorf("unknown signature method %q", sm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ks.CheckSign(ctx, key, so)
}
