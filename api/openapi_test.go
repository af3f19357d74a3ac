package api

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"mime"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wssignd/wssignd/client"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

type yamlMap = map[string]any

func loadOpenAPI(t *testing.T) yamlMap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlMap
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// get walks a path of map keys; it fails the test when one is missing.
func get(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(yamlMap)
		if !ok {
			t.Fatalf("openapi.yaml: %s is not a mapping", strings.Join(keys[:i], "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("openapi.yaml: no %s", strings.Join(keys[:i+1], "."))
		}
	}
	return v
}

// resolve follows a local $ref ("#/components/..."), if v is one.
func resolve(t *testing.T, doc yamlMap, v any) any {
	t.Helper()
	m, ok := v.(yamlMap)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	if !strings.HasPrefix(ref, "#/") {
		t.Fatalf("openapi.yaml: non-local $ref %q", ref)
	}
	return resolve(t, doc, get(t, doc, strings.Split(ref[2:], "/")...))
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// specOperations returns "METHOD /path" → operation object.
func specOperations(t *testing.T, doc yamlMap) map[string]yamlMap {
	t.Helper()
	out := map[string]yamlMap{}
	for path, item := range get(t, doc, "paths").(yamlMap) {
		for k, op := range item.(yamlMap) {
			if !slices.Contains(httpMethods, k) {
				continue
			}
			out[strings.ToUpper(k)+" "+path] = op.(yamlMap)
		}
	}
	return out
}

// TestOpenAPIMatchesRouter: the (method, path) pairs in api/openapi.yaml
// are exactly the server's routes, both ways.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi version %q, want 3.1.x", v)
	}
	var spec []string
	for k := range specOperations(t, doc) {
		spec = append(spec, k)
	}
	sort.Strings(spec)
	routes := New(Config{Keys: &memKeys{}}).Routes()
	sort.Strings(routes)
	if !slices.Equal(spec, routes) {
		t.Errorf("openapi.yaml and the router differ\nspec:   %q\nrouter: %q\nonly in spec: %q\nonly in router: %q",
			spec, routes, minus(spec, routes), minus(routes, spec))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestOpenAPIWellFormed: every $ref resolves, every operation documents
// its responses with the Wssignd-Request-Id header every response carries,
// and every error response is problem+json.
func TestOpenAPIWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case yamlMap:
			for k, x := range v {
				if k == "$ref" {
					resolve(t, doc, v) // fails on a dangling reference
					continue
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		}
	}
	walk("", doc)

	ids := map[string]bool{}
	for key, op := range specOperations(t, doc) {
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] {
			t.Errorf("%s: missing or duplicate operationId %q", key, id)
		}
		ids[id] = true
		responses, ok := op["responses"].(yamlMap)
		if !ok || len(responses) == 0 {
			t.Errorf("%s: no responses", key)
			continue
		}
		if _, ok := responses["405"]; !ok {
			t.Errorf("%s: 405 not documented (every route answers a wrong method)", key)
		}
		for status, r := range responses {
			resp := resolve(t, doc, r).(yamlMap)
			hdrs, _ := resp["headers"].(yamlMap)
			if _, ok := hdrs["Wssignd-Request-Id"]; !ok {
				t.Errorf("%s %s: no Wssignd-Request-Id header", key, status)
			}
			content, _ := resp["content"].(yamlMap)
			code, _ := strconv.Atoi(status)
			_, isProblem := content["application/problem+json"]
			if code >= 400 && key != "GET /readyz" && !isProblem {
				t.Errorf("%s %s: an error response that is not problem+json", key, status)
			}
		}
	}
}

// serverProblemCodes collects every problem code the server can send: the
// Code* string constants of package api (parsed from its source), the
// codes with a title, and the wss codes mapped to a status.
func serverProblemCodes(t *testing.T) []string {
	t.Helper()
	set := map[string]bool{}
	for c := range titles {
		set[c] = true
	}
	for c := range wssStatus {
		set[string(c)] = true
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "api", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						set[v] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIProblemCodes: the Problem schema's code enum is exactly the
// set of codes the server can send.
func TestOpenAPIProblemCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	var spec []string
	for _, c := range get(t, doc, "components", "schemas", "Problem", "properties", "code", "enum").([]any) {
		spec = append(spec, c.(string))
	}
	sort.Strings(spec)
	server := serverProblemCodes(t)
	if !slices.Equal(spec, server) {
		t.Errorf("Problem.code enum differs from the server's codes\nonly in spec: %q\nonly in server: %q", minus(spec, server), minus(server, spec))
	}
}

// TestProblemCodesDocumented: every code the server can send has its
// entry in docs/errors.md, where the problem type URIs point.
func TestProblemCodesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "errors.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range serverProblemCodes(t) {
		if !strings.Contains(string(b), "| `"+c+"` |") {
			t.Errorf("docs/errors.md has no row for problem code %q", c)
		}
	}
}

// TestOpenAPISchemasMatchTypes: the JSON schemas of the Go types the API
// encodes list exactly their JSON fields, and required ones are not
// omitempty.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, tc := range []struct {
		name string
		typ  reflect.Type
	}{
		{"Problem", reflect.TypeFor[Problem]()},
		{"KeyInfo", reflect.TypeFor[KeyInfo]()},
		{"RawSignRequest", reflect.TypeFor[RawSignRequest]()},
		{"RawSignResponse", reflect.TypeFor[RawSignResponse]()},
		// What the Go client decodes.
		{"Problem", reflect.TypeFor[client.Problem]()},
		{"KeyInfo", reflect.TypeFor[client.KeyInfo]()},
		{"RawSignRequest", reflect.TypeFor[client.RawSignRequest]()},
		{"RawSignResponse", reflect.TypeFor[client.RawSignResponse]()},
		{"VerifyResult", reflect.TypeFor[client.VerifyResult]()},
		{"VerifySigner", reflect.TypeFor[client.VerifySigner]()},
		{"VerifyTimestamp", reflect.TypeFor[client.VerifyTimestamp]()},
		{"VerifyAlgorithms", reflect.TypeFor[client.VerifyAlgorithms]()},
		{"VerifyExplain", reflect.TypeFor[client.VerifyExplain]()},
		{"Health", reflect.TypeFor[client.Health]()},
		{"Readiness", reflect.TypeFor[client.Readiness]()},
		// What the server encodes (wss).
		{"VerifyResult", reflect.TypeFor[wss.VerifyResult]()},
		{"VerifySigner", reflect.TypeFor[wss.SignerInfo]()},
		{"VerifyTimestamp", reflect.TypeFor[wss.TimestampInfo]()},
		{"VerifyAlgorithms", reflect.TypeFor[wss.AlgorithmInfo]()},
		{"VerifyExplain", reflect.TypeFor[wss.RefExplain]()},
	} {
		name, typ := tc.name, tc.typ
		schema := get(t, doc, "components", "schemas", name).(yamlMap)
		var props []string
		for p := range schema["properties"].(yamlMap) {
			props = append(props, p)
		}
		var fields, optional []string
		for f := range typ.Fields() {
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" || f.Anonymous {
				continue
			}
			n, opts, _ := strings.Cut(tag, ",")
			if n == "" {
				n = f.Name
			}
			fields = append(fields, n)
			if strings.Contains(opts, "omitempty") {
				optional = append(optional, n)
			}
		}
		sort.Strings(props)
		sort.Strings(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has %q, the Go type %v encodes %q", name, props, typ, fields)
		}
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if slices.Contains(optional, r.(string)) {
					t.Errorf("schema %s requires %s, but the Go type %v omits it when empty", name, r, typ)
				}
			}
		}
	}
}

// TestOpenAPIDescribesResponses sends each route a request on a real
// socket and checks that the status and media type it gets are documented
// for that operation, and that a wrong method's 405 is too.
func TestOpenAPIDescribesResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := specOperations(t, doc)
	keys := testKeys(t)
	cfg := clientTestConfig(t, keys)
	hc := serveUnix(t, New(cfg))
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	d := sha256.Sum256([]byte("openapi"))
	raw := `{"digest":"` + base64.StdEncoding.EncodeToString(d[:]) + `","hash":"SHA-256","scheme":"pkcs1v15"}`
	cases := []struct {
		op, method, path, ctype, body string
	}{
		{"POST /v1/soap/sign", "POST", "/v1/soap/sign?profile=default", "text/xml", env},
		{"POST /v1/soap/sign", "POST", "/v1/soap/sign?profile=nobody", "text/xml", env},
		{"POST /v1/soap/sign", "POST", "/v1/soap/sign?profile=default", "application/json", env},
		{"POST /v1/soap/sign", "POST", "/v1/soap/sign?profile=default", "text/xml", "<a"},
		{"POST /v1/soap/sign", "POST", "/v1/soap/sign?profile=default", "text/xml", "<a/>"},
		{"POST /v1/soap/sign", "GET", "/v1/soap/sign?profile=default", "", ""},
		{"POST /v1/soap/verify", "POST", "/v1/soap/verify?profile=nope", "text/xml", env},
		{"POST /v1/soap/verify", "POST", "/v1/soap/verify?profile=rsa", "text/xml", env},
		{"POST /v1/soap/verify", "POST", "/v1/soap/verify?profile=rsa&explain=2", "text/xml", env},
		{"POST /v1/soap/verify", "POST", "/v1/soap/verify?profile=rsa", "text/plain", env},
		{"POST /v1/soap/encrypt", "POST", "/v1/soap/encrypt?profile=nope", "text/xml", env},
		{"POST /v1/soap/encrypt", "POST", "/v1/soap/encrypt?profile=to-rsa", "text/xml", env},
		{"POST /v1/soap/encrypt", "POST", "/v1/soap/encrypt?profile=requester", "text/xml", env},
		{"POST /v1/soap/decrypt", "POST", "/v1/soap/decrypt?profile=nope", "text/xml", env},
		{"POST /v1/soap/decrypt", "POST", "/v1/soap/decrypt?profile=rsa", "text/xml", env},
		{"GET /v1/keys", "GET", "/v1/keys", "", ""},
		{"GET /v1/keys", "POST", "/v1/keys", "", ""},
		{"POST /v1/keys/{name}/sign", "POST", "/v1/keys/rsa/sign", "application/json", raw},
		{"POST /v1/keys/{name}/sign", "POST", "/v1/keys/other/sign", "application/json", raw},
		{"POST /v1/keys/{name}/sign", "POST", "/v1/keys/rsa/sign", "text/plain", raw},
		{"POST /v1/keys/{name}/sign", "GET", "/v1/keys/rsa/sign", "", ""},
		{"GET /healthz", "GET", "/healthz", "", ""},
		{"GET /readyz", "GET", "/readyz", "", ""},
		{"GET /metrics", "GET", "/metrics", "", ""},
		{"GET /metrics", "DELETE", "/metrics", "", ""},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.path + " " + tc.ctype
		op, ok := ops[tc.op]
		if !ok {
			t.Errorf("%s: operation %s not in the spec", name, tc.op)
			continue
		}
		resp, _ := do(t, hc, tc.method, tc.path, tc.ctype, tc.body, nil)
		documented, ok := op["responses"].(yamlMap)[strconv.Itoa(resp.StatusCode)]
		if !ok {
			t.Errorf("%s: status %d is not documented for %s", name, resp.StatusCode, tc.op)
			continue
		}
		content, _ := resolve(t, doc, documented).(yamlMap)["content"].(yamlMap)
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if _, ok := content[mt]; !ok {
			t.Errorf("%s: %d with media type %q; documented: %v", name, resp.StatusCode, mt, keysOf(content))
		}
		if resp.Header.Get("Wssignd-Request-Id") == "" {
			t.Errorf("%s: no Wssignd-Request-Id", name)
		}
	}
}

func keysOf(m yamlMap) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// testKeys and clientTestConfig mirror apitest.Keys and apitest.Config,
// which this package's own tests cannot import (apitest imports api).
func clientTestConfig(t *testing.T, keys *memKeys) Config {
	t.Helper()
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	other := Access{UIDs: []uint32{4_000_000_000}}
	trust, err := wss.NewTrustStore(wss.TrustConfig{Pinned: []*x509.Certificate{keys.creds["rsa"].Chain[0]}})
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		EncryptProfiles: map[string]*EncryptProfile{
			"to-rsa":    {Encrypt: wss.EncryptOptions{Recipient: keys.creds["rsa"].Chain[0]}, Access: me},
			"requester": {AllowRecipientHeader: true, Access: me},
		},
		DecryptProfiles: map[string]*DecryptProfile{"rsa": {Key: "rsa", Access: me}},
		VerifyProfiles: map[string]*VerifyProfile{
			"rsa": {Verify: wss.VerifyOptions{Trust: trust, Replay: wss.NewReplayCache(100)}, Access: me},
		},
		Keys: keys,
		Profiles: map[string]*Profile{
			"default": {Key: "rsa", Access: me},
			"ec":      {Key: "ec", Access: me},
			"nobody":  {Key: "ec", Access: other},
		},
		RawKeys:      map[string]Access{"rsa": me, "ec": me, "other": other},
		MaxBodyBytes: 4096,
	}
}

func testKeys(t *testing.T) *memKeys {
	return &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
}
