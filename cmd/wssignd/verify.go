package main

import (
	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
)

// buildVerifyProfiles turns [verify.NAME] tables into API verify profiles.
func buildVerifyProfiles(c *config.Config) (map[string]*api.VerifyProfile, error) {
	out := map[string]*api.VerifyProfile{}
	for name, p := range c.Verify {
		acc, err := resolveAccess(p.AllowUsers, p.AllowGroups)
		if err != nil {
			return nil, err
		}
		out[name] = &api.VerifyProfile{Access: acc}
	}
	return out, nil
}
