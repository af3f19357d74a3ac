package daemon

import (
	"errors"
	"os/user"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/config"
)

// TestResolveAccessFailsClosed: a name whose uid or gid the name service
// answers in a form that is not a number, or whose lookup fails, refuses
// the list (and so the configuration) instead of putting id 0 on it.
func TestResolveAccessFailsClosed(t *testing.T) {
	s := defaultSeams()
	s.lookupUser = func(name string) (*user.User, error) {
		switch name {
		case "odd":
			return &user.User{Username: name, Uid: "S-1-5-21-7"}, nil
		case "big":
			return &user.User{Username: name, Uid: "4294967296"}, nil
		case "ok":
			return &user.User{Username: name, Uid: "1234"}, nil
		}
		return nil, errors.New("name service unreachable")
	}
	s.lookupGroup = func(name string) (*user.Group, error) {
		switch name {
		case "odd":
			return &user.Group{Name: name, Gid: ""}, nil
		case "ok":
			return &user.Group{Name: name, Gid: "4321"}, nil
		}
		return nil, errors.New("name service unreachable")
	}
	for _, tc := range []struct {
		users, groups []string
	}{
		{[]string{"odd"}, nil},
		{[]string{"big"}, nil},
		{[]string{"ok", "down"}, nil},
		{nil, []string{"odd"}},
		{nil, []string{"ok", "down"}},
		{[]string{"ok"}, []string{"odd"}},
	} {
		a, err := s.resolveAccess(tc.users, tc.groups)
		if err == nil {
			t.Errorf("users %q groups %q: accepted as %+v", tc.users, tc.groups, a)
		}
	}
	a, err := s.resolveAccess([]string{"ok", "77"}, []string{"ok", "88"})
	if err != nil || len(a.UIDs) != 2 || a.UIDs[0] != 1234 || a.UIDs[1] != 77 || len(a.GIDs) != 2 || a.GIDs[0] != 4321 || a.GIDs[1] != 88 {
		t.Errorf("good names: %+v, %v", a, err)
	}

	// The same through the configuration: raw-sign lists refuse the start.
	c := &config.Config{Keys: map[string]*config.Key{"k": {RawSignUsers: []string{"odd"}}}}
	if _, err := buildRawKeys(s, c); err == nil || !strings.Contains(err.Error(), "keys.k") {
		t.Errorf("raw_sign_users with an odd uid: %v", err)
	}
	c = &config.Config{Keys: map[string]*config.Key{"k": {RawSignGroups: []string{"down"}}}}
	if _, err := buildRawKeys(s, c); err == nil {
		t.Error("raw_sign_groups with a failed lookup: accepted")
	}
}
