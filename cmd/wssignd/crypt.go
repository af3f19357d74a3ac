package main

import (
	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
)

// buildCryptProfiles turns [encrypt.NAME] and [decrypt.NAME] tables into API
// profiles.
func buildCryptProfiles(c *config.Config, ks *keyStore) (map[string]*api.EncryptProfile, map[string]*api.DecryptProfile, error) {
	enc := map[string]*api.EncryptProfile{}
	dec := map[string]*api.DecryptProfile{}
	for name, p := range c.Encrypt {
		acc, err := resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			return nil, nil, err
		}
		enc[name] = &api.EncryptProfile{Access: acc}
	}
	for name, p := range c.Decrypt {
		acc, err := resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			return nil, nil, err
		}
		dec[name] = &api.DecryptProfile{Access: acc}
	}
	return enc, dec, nil
}
