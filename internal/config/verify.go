package config

// VerifyProfile says which signed messages /v1/soap/verify accepts.
// (Filled in by the verification work; see issue #6.)
type VerifyProfile struct {
	// AllowUsers and AllowGroups: as for sign profiles.
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *VerifyProfile) defaults(dir string) {}

func (p *VerifyProfile) validate(f string, c *Config) []string { return nil }
