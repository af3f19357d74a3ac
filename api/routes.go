package api

import "sort"

// Routes lists "METHOD /path" for every route the server serves; the
// OpenAPI test compares it with api/openapi.yaml.
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.mux)+len(s.prefixRoutes))
	for path, rt := range s.mux {
		out = append(out, rt.method+" "+path)
	}
	for _, pr := range s.prefixRoutes {
		out = append(out, pr.method+" "+pr.pattern)
	}
	sort.Strings(out)
	return out
}
