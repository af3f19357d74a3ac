package wss

import (
	"context"
	"io"
)

// Canonicalisation entry points used by tests only: the daemon's paths run
// the same sinks through scanEnvelope and Verify.

// canonicalizeRawNth writes the exclusive canonical form (without comments)
// of the n-th element (document order, 0 = the document element) of the
// document raw to w. It reports false when there is no such element. With
// goNames, names encoding/xml refuses are refused (see xmlTokenizer.goNames).
func canonicalizeRawNth(w io.Writer, raw []byte, n int, inclusive []string, goNames bool) (bool, error) {
	t := &xmlTokenizer{raw: raw, goNames: goNames}
	var sink *c14nSink
	i := 0
	err := streamSinks(t, func(t *xmlTokenizer) tokenSink {
		i++
		if i-1 == n {
			sink = newC14NSink(w, inclusive)
			return sink
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if sink == nil {
		return false, nil
	}
	defer sink.release()
	return true, sink.out.err
}

// c14nTarget asks canonicalizeRawMany for the exclusive canonical form of
// the n-th element (document order, 0 = the document element) written to w.
type c14nTarget struct {
	n         int
	w         io.Writer
	inclusive []string
	comments  bool  // WithComments
	found     bool  // set: the element exists
	err       error // set: the first error of w
}

// multiSink feeds several sinks started at the same element.
type multiSink []tokenSink

func (m multiSink) token(t *xmlTokenizer) bool {
	done := false
	for _, s := range m {
		done = s.token(t)
	}
	return done
}

// canonicalizeRawMany canonicalises every target's element of the document
// raw in one pass of the tokenizer in spec mode (XML 1.0, attribute values
// normalised per §3.3.3, as libxml2 and so xmlsec1 read them). The error is
// the tokenizer's; a writer's error is recorded in its target.
//
// The tokenizer enforces lim and stops once ctx ends.
func canonicalizeRawMany(ctx context.Context, raw []byte, lim Limits, targets []*c14nTarget) error {
	byIndex := make(map[int][]int, len(targets))
	for j, tg := range targets {
		byIndex[tg.n] = append(byIndex[tg.n], j)
	}
	sinks := make([]*c14nSink, len(targets))
	defer func() {
		for _, s := range sinks {
			if s != nil {
				s.release()
			}
		}
	}()
	i := 0
	t := getTokenizer(raw)
	defer putTokenizer(t)
	t.bound(ctx, lim)
	err := streamSinks(t, func(t *xmlTokenizer) tokenSink {
		js := byIndex[i]
		i++
		if len(js) == 0 {
			return nil
		}
		m := make(multiSink, 0, len(js))
		for _, j := range js {
			s := newC14NSink(targets[j].w, targets[j].inclusive)
			s.comments = targets[j].comments
			targets[j].found = true
			sinks[j] = s
			m = append(m, s)
		}
		if len(m) == 1 {
			return m[0]
		}
		return m
	})
	if err != nil {
		return err
	}
	for j, s := range sinks {
		if s != nil {
			targets[j].err = s.out.err
		}
	}
	return nil
}

// parseSpanTree reads raw into a span tree under lim (size, depth, element
// count), with the tokenizer in the mode of scanEnvelope (names that
// encoding/xml refuses are refused), and checks that Id values (wsu:Id, Id,
// ID, xml:id) are unique.
func parseSpanTree(ctx context.Context, raw []byte, lim Limits) (*spanTree, error) {
	st, err := readSpanTree(ctx, raw, lim)
	if err != nil {
		return nil, err
	}
	if st.dup != nil {
		return nil, st.dup
	}
	return st, nil
}
