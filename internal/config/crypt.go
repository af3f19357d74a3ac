package config

// EncryptProfile configures /v1/soap/encrypt. (Filled in by the encryption
// work; see issue #7.)
type EncryptProfile struct {
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *EncryptProfile) defaults(dir string) {}

func (p *EncryptProfile) validate(f string, c *Config) []string { return nil }

// DecryptProfile configures /v1/soap/decrypt.
type DecryptProfile struct {
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *DecryptProfile) defaults(dir string) {}

func (p *DecryptProfile) validate(f string, c *Config) []string { return nil }
