package payload

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func addTestdata(f *testing.F, dir string) {
	files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse: Parse never panics, every error wraps ErrInvalidPayload, and an
// accepted payload re-encodes to bytes that parse to the same payload.
func FuzzParse(f *testing.F) {
	addTestdata(f, "simplesigning")
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"sha512:` +
		string(bytes.Repeat([]byte("0"), 128)) + `"},"type":"cosign container image signature"},"optional":{"n":1e400,"x":[null,true]}}`))
	f.Add([]byte(`{"critical":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("error %v does not wrap ErrInvalidPayload", err)
			}
			return
		}
		out, err := p.Bytes()
		if err != nil {
			t.Fatalf("Bytes of an accepted payload: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded payload %s does not parse: %v", out, err)
		}
		if again.Critical != p.Critical || len(again.Optional) != len(p.Optional) {
			t.Fatalf("round trip changed the payload: %+v -> %+v", p, again)
		}
		out2, err := again.Bytes()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable: %s vs %s (%v)", out, out2, err)
		}
		if err := p.CheckAnnotations(p.StringAnnotations()); err != nil {
			t.Fatalf("payload does not satisfy its own annotations: %v", err)
		}
	})
}

// FuzzParseEnvelope: ParseEnvelope never panics, errors wrap
// ErrInvalidEnvelope, and an accepted envelope re-encodes to one that
// parses to the same value with the same PAE.
func FuzzParseEnvelope(f *testing.F) {
	addTestdata(f, "dsse")
	f.Add([]byte(`{"payloadType":"t","payload":"_-8","signatures":[{"keyid":"k","sig":"MAEC"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidEnvelope) {
				t.Fatalf("error %v does not wrap ErrInvalidEnvelope", err)
			}
			return
		}
		pae, err := e.PAE()
		if err != nil {
			t.Fatalf("PAE of an accepted envelope: %v", err)
		}
		out, err := e.Bytes()
		if err != nil {
			t.Fatalf("Bytes of an accepted envelope: %v", err)
		}
		again, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-encoded envelope %s does not parse: %v", out, err)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip changed the envelope: %+v -> %+v", e, again)
		}
		pae2, _ := again.PAE()
		if !bytes.Equal(pae, pae2) {
			t.Fatalf("PAE changed in the round trip")
		}
	})
}

// FuzzParseStatement: ParseStatement never panics, errors wrap
// ErrInvalidStatement, and accepted statements re-encode and re-parse.
func FuzzParseStatement(f *testing.F) {
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"name":"n","digest":{"gitCommit":"x"}}],"predicate":{"a":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatement(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidStatement) {
				t.Fatalf("error %v does not wrap ErrInvalidStatement", err)
			}
			return
		}
		out, err := s.Bytes()
		if err != nil {
			t.Fatalf("Bytes of an accepted statement: %v", err)
		}
		if _, err := ParseStatement(out); err != nil {
			t.Fatalf("re-encoded statement %s does not parse: %v", out, err)
		}
	})
}

// FuzzParseLenient: the lenient parser never panics, every error matches
// ErrInvalidPayload, and what it accepts has a digest claim and satisfies
// its own annotations.
func FuzzParseLenient(f *testing.F) {
	addTestdata(f, "simplesigning")
	f.Add([]byte(`{"critical":{"image":{"docker-manifest-digest":"x"}},"optional":{"n":1,"s":"v"}}`))
	f.Add([]byte(`{"critical":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseLenient(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("error %v does not match ErrInvalidPayload", err)
			}
			return
		}
		if p.Critical.Image.DockerManifestDigest == "" {
			t.Fatal("accepted a payload without a digest claim")
		}
		if err := p.CheckAnnotations(p.StringAnnotations()); err != nil {
			t.Fatalf("payload does not satisfy its own annotations: %v", err)
		}
	})
}
