package auth

import (
	"context"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      []string
		want    []Access
		wantErr bool
	}{
		{in: nil, want: nil},
		{in: []string{"repository:group/app:pull,push"}, want: []Access{{TypeRepository, "group/app", []string{"pull", "push"}}}},
		{in: []string{"repository:group/app:push", "repository:group/app:pull"}, want: []Access{{TypeRepository, "group/app", []string{"pull", "push"}}}},
		{in: []string{"repository:a:pull repository:b:push"}, want: []Access{{TypeRepository, "a", []string{"pull"}}, {TypeRepository, "b", []string{"push"}}}},
		{in: []string{"repository:localhost:5000/ns/app:pull"}, want: []Access{{TypeRepository, "localhost:5000/ns/app", []string{"pull"}}}},
		{in: []string{"repository(plugin):a/b:pull"}, want: []Access{{TypeRepository, "a/b", []string{"pull"}}}},
		{in: []string{"registry:catalog:*"}, want: []Access{{TypeRegistry, "catalog", []string{"*"}}}},
		{in: []string{"repository:a:pull,,pull"}, want: []Access{{TypeRepository, "a", []string{"pull"}}}},
		{in: []string{"repository:a:"}, want: []Access{{TypeRepository, "a", nil}}},
		{in: []string{"repository"}, wantErr: true},
		{in: []string{"repository:a"}, wantErr: true},
		{in: []string{":a:pull"}, wantErr: true},
		{in: []string{"repository::pull"}, wantErr: true},
		{in: []string{"repository(plugin:a:pull"}, wantErr: true},
		{in: []string{strings.Repeat("repository:a:pull ", maxScopes+1)}, wantErr: true},
		{in: []string{"repository:" + strings.Repeat("a", maxScopeLength) + ":pull"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseScopes(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseScopes(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		typ                string
		requested, allowed []string
		want               []string
	}{
		{TypeRepository, []string{"pull", "push"}, []string{"pull"}, []string{"pull"}},
		{TypeRepository, []string{"pull", "push", "delete"}, []string{"delete", "pull", "push"}, []string{"delete", "pull", "push"}},
		{TypeRepository, []string{"*"}, []string{"pull"}, []string{"pull"}},
		{TypeRepository, []string{"*"}, []string{"*"}, []string{"delete", "pull", "push"}},
		{TypeRepository, []string{"push"}, nil, nil},
		{TypeRepository, []string{"admin"}, []string{"*"}, nil},
		{TypeRegistry, []string{"*"}, []string{"*"}, []string{"*"}},
		{TypeRegistry, []string{"*"}, nil, nil},
	}
	for _, tt := range tests {
		if got := intersect(tt.typ, tt.requested, tt.allowed); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("intersect(%s, %v, %v) = %v, want %v", tt.typ, tt.requested, tt.allowed, got, tt.want)
		}
	}
}

func basic(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in      string
		want    credentials
		wantErr bool
	}{
		{in: "", want: credentials{}},
		{in: basic("alice", "pw:with:colons"), want: credentials{scheme: "basic", user: "alice", password: "pw:with:colons"}},
		{in: "basic " + base64.StdEncoding.EncodeToString([]byte("u:")), want: credentials{scheme: "basic", user: "u"}},
		{in: "Bearer abc.def.ghi", want: credentials{scheme: "bearer", token: "abc.def.ghi"}},
		{in: "BEARER   tok  ", want: credentials{scheme: "bearer", token: "tok"}},
		{in: "Bearer", wantErr: true},
		{in: "Bearer ", wantErr: true},
		{in: "Bearer a b", wantErr: true},
		{in: "Basic !!!", wantErr: true},
		{in: "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), wantErr: true},
		{in: "Digest x", wantErr: true},
		{in: "Bearer " + strings.Repeat("a", maxAuthorizationLength), wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseAuthorization(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseAuthorization(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("parseAuthorization(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestRequired(t *testing.T) {
	repo := func(kind string) Endpoint { return Endpoint{Kind: kind, Repository: "g/a"} }
	tests := []struct {
		method string
		ep     Endpoint
		want   []Access
	}{
		{"GET", Endpoint{Kind: EndpointBase}, nil},
		{"GET", Endpoint{}, nil},
		{"GET", Endpoint{Kind: EndpointCatalog}, []Access{{TypeRegistry, CatalogName, []string{"*"}}}},
		{"GET", repo(EndpointManifests), []Access{{TypeRepository, "g/a", []string{"pull"}}}},
		{"HEAD", repo(EndpointBlobs), []Access{{TypeRepository, "g/a", []string{"pull"}}}},
		{"GET", repo(EndpointTags), []Access{{TypeRepository, "g/a", []string{"pull"}}}},
		{"GET", repo(EndpointReferrers), []Access{{TypeRepository, "g/a", []string{"pull"}}}},
		{"PUT", repo(EndpointManifests), []Access{{TypeRepository, "g/a", []string{"pull", "push"}}}},
		{"POST", repo(EndpointUploads), []Access{{TypeRepository, "g/a", []string{"pull", "push"}}}},
		{"PATCH", repo(EndpointUploads), []Access{{TypeRepository, "g/a", []string{"pull", "push"}}}},
		{"DELETE", repo(EndpointManifests), []Access{{TypeRepository, "g/a", []string{"delete"}}}},
		{"DELETE", repo(EndpointBlobs), []Access{{TypeRepository, "g/a", []string{"delete"}}}},
		{"DELETE", repo(EndpointUploads), []Access{{TypeRepository, "g/a", []string{"pull", "push"}}}},
		{"OPTIONS", repo(EndpointManifests), []Access{{TypeRepository, "g/a", []string{"pull", "push"}}}},
	}
	for _, tt := range tests {
		if got := required(tt.method, tt.ep); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("required(%s, %+v) = %+v, want %+v", tt.method, tt.ep, got, tt.want)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not an argon2id PHC string with the expected parameters", h)
	}
	if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
		t.Fatalf("VerifyPassword(right) = %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(h, "correct horsE"); ok || err != nil {
		t.Fatalf("VerifyPassword(wrong) = %v, %v", ok, err)
	}
	h2, _ := HashPassword("correct horse")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password hashed")
	}
	for _, bad := range []string{
		"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5",
	} {
		if _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("VerifyPassword accepted malformed hash %q", bad)
		}
	}
}

func TestBudgets(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryBudgets()
	k := charge{key: "k", rl: RateLimit{Burst: 3, Every: time.Minute}}
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if c, _, _ := exhausted(ctx, m, []charge{k}, now); c != nil {
			t.Fatalf("attempt %d throttled within the burst", i)
		}
		if had, err := spend(ctx, m, []charge{k}, now); err != nil || !had[0] {
			t.Fatalf("spend %d: %v %v", i, had, err)
		}
	}
	c, retry, _ := exhausted(ctx, m, []charge{{key: "other", rl: k.rl}, k}, now)
	if c == nil || c.key != "k" || retry != time.Minute {
		t.Fatalf("after burst: %v, retry %v; want k throttled for 1m", c, retry)
	}
	if had, _ := spend(ctx, m, []charge{k}, now); had[0] {
		t.Fatal("spent a token from an empty budget")
	}
	if c, _, _ := exhausted(ctx, m, []charge{k}, now.Add(time.Minute)); c != nil {
		t.Fatal("not refilled after one period")
	}
	// One key charged twice in one call is charged twice.
	two := charge{key: "two", rl: RateLimit{Burst: 2, Every: time.Minute}}
	if had, _ := spend(ctx, m, []charge{two, two, two}, now); !had[0] || !had[1] || had[2] {
		t.Fatalf("three charges of a budget of two: %v", had)
	}
	// A full budget is swept; an empty one is not.
	if n, _ := m.SweepBudgets(ctx, now.Add(2*time.Minute), now, maxBudgets); n != 1 {
		t.Fatalf("swept %d budgets, want the one full again (two)", n)
	}
	if n, _ := m.SweepBudgets(ctx, now.Add(3*time.Minute), now, maxBudgets); n != 1 {
		t.Fatalf("swept %d budgets, want k", n)
	}
	// Known logins.
	m.RememberLogin(ctx, "u@a", now)
	if ok, _ := m.LoginSince(ctx, "u@a", now); !ok {
		t.Fatal("login not remembered")
	}
	if ok, _ := m.LoginSince(ctx, "u@a", now.Add(time.Second)); ok {
		t.Fatal("login remembered as later than it was")
	}
}

// The memory store stays bounded whatever keys clients make up.
func TestMemoryBudgetsBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryBudgets()
	now := time.Unix(1000, 0)
	rl := RateLimit{Burst: 1, Every: time.Hour}
	for i := range maxBudgets + 10 {
		spend(ctx, m, []charge{{key: fmt.Sprint("k", i), rl: rl}}, now)
		m.RememberLogin(ctx, fmt.Sprint("k", i), now.Add(time.Duration(i)))
	}
	if len(m.budgets) > maxBudgets || len(m.logins) > maxBudgets {
		t.Fatalf("%d budgets, %d logins; bound %d", len(m.budgets), len(m.logins), maxBudgets)
	}
	if ok, _ := m.LoginSince(ctx, fmt.Sprint("k", maxBudgets+9), now); !ok {
		t.Fatal("the newest login was dropped")
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":             "addr:127.0.0.1",
		"[::ffff:10.0.0.1]:1":        "addr:10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "addr:2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "addr:2001:db8:1:2::/64",
		"garbage":                    "addr:garbage",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                  "alice",
		"hmpat_abc":              "<redacted>",
		"hmjob_abc":              "<redacted>",
		"eyJhbGciOi.eyJ.sig":     "<redacted>",
		strings.Repeat("a", 129): "<redacted>",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"repository:group/app:pull,push", "registry:catalog:*", "repository(plugin):a:pull",
		"repository:localhost:5000/a:pull repository:b:push", "a::", ":::", "repository:a:pull,,*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseScopes([]string{s})
		if err != nil {
			return
		}
		for _, a := range got {
			if a.Type == "" || a.Name == "" {
				t.Fatalf("ParseScopes(%q) returned an empty type or name: %+v", s, a)
			}
			// Round trip: the formatted scope parses to the same access.
			again, err := ParseScopes([]string{a.String()})
			if err != nil || len(again) != 1 || again[0].Name != a.Name {
				t.Fatalf("round trip of %q: %+v, %v", a.String(), again, err)
			}
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{basic("alice", "pw"), "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig", "Basic", "basic Og==", "Bearer  x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseAuthorization(s)
		if err != nil {
			return
		}
		switch c.scheme {
		case "":
			if s != "" {
				t.Fatalf("non-empty header %q parsed as no credentials", s)
			}
		case "basic":
			if c.token != "" {
				t.Fatal("basic credentials with a token")
			}
		case "bearer":
			if c.token == "" || strings.ContainsAny(c.token, " \t") {
				t.Fatalf("bad bearer token %q from %q", c.token, s)
			}
		default:
			t.Fatalf("unknown scheme %q", c.scheme)
		}
	})
}

func FuzzVerifyPasswordHash(f *testing.F) {
	h, _ := HashPassword("seed-password")
	f.Add(h, "seed-password")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", "x")
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		p, err := parseHash(encoded)
		if err != nil {
			return
		}
		if p.memory > maxArgonMemory || p.time > maxArgonTime || p.threads == 0 {
			t.Fatalf("out-of-range parameters accepted from %q", encoded)
		}
		if p.memory > 64 || p.time > 2 {
			return // valid but slow; the bound check above is what matters
		}
		VerifyPassword(encoded, pw)
	})
}
