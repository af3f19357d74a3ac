package wss

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestNSStack checks nsStack against a naive model (a list of bindings
// scanned from the innermost) under random pushes and pops, with scopes
// small enough for the linear path and large enough for the map.
func TestNSStack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s nsStack
	type bind struct{ p, u string }
	var model []bind
	var marks []int
	modes := map[bool]int{}
	for step := range 20000 {
		modes[s.indexed]++
		switch op := r.IntN(10); {
		case op < 5:
			p := fmt.Sprintf("p%d", r.IntN(40))
			if r.IntN(10) == 0 {
				p = ""
			}
			u := fmt.Sprintf("u%d", step)
			s.push([]byte(p), []byte(u))
			model = append(model, bind{p, u})
		case op < 7:
			marks = append(marks, len(model))
		default:
			if len(marks) == 0 {
				continue
			}
			m := marks[len(marks)-1]
			marks = marks[:len(marks)-1]
			s.popTo(m)
			model = model[:m]
		}
		if s.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, s.len(), len(model))
		}
		for q := range 42 {
			p := fmt.Sprintf("p%d", q)
			if q == 41 {
				p = ""
			}
			want, wok := "", false
			for i := len(model) - 1; i >= 0; i-- {
				if model[i].p == p {
					want, wok = model[i].u, true
					break
				}
			}
			got, ok := s.lookup([]byte(p))
			if ok != wok || string(got) != want {
				t.Fatalf("step %d: lookup(%q) = %q %v, want %q %v", step, p, got, ok, want, wok)
			}
		}
		if len(s.index) > len(model) {
			t.Fatalf("step %d: %d prefixes indexed for %d bindings", step, len(s.index), len(model))
		}
	}
	if modes[true] == 0 || modes[false] == 0 {
		t.Fatalf("steps per mode (indexed or not): %v; the test must exercise both", modes)
	}
}
