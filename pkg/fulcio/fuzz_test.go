package fulcio_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// FuzzCertificate: any certificate a signature carries can be read (SANs,
// issuer, extension values) without a panic, and what Values records is
// within its bounds.
func FuzzCertificate(f *testing.F) {
	f.Add(realCert(f).Raw)
	san, _ := fulcio.OtherNameSAN("builder-7")
	f.Add(certWith(f, san).Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		fulcio.SubjectAlternativeNames(c)
		fulcio.Identity(c)
		fulcio.ParseExtensions(c.Extensions)
		for n := 1; n <= 24; n++ {
			fulcio.Value(c, n)
		}
		if v := fulcio.Values(c); len(v) > 64 {
			t.Fatalf("recorded %d values", len(v))
		}
	})
}

// FuzzExtensionValue: ParseExtensions never panics on a hostile value of
// any Fulcio extension, and what it accepts renders back to a value that
// parses to the same extensions.
func FuzzExtensionValue(f *testing.F) {
	f.Add(13, utf8DER("abc"))
	f.Add(1, []byte("https://issuer.example"))
	f.Add(8, []byte{0x0c, 0x80})
	f.Add(21, []byte{0x13, 0x02, 'a'})
	f.Fuzz(func(t *testing.T, n int, value []byte) {
		if n < 1 || n > 1000 {
			return
		}
		exts := []pkix.Extension{{Id: fulcio.OIDIssuerV1, Value: []byte("https://issuer.example")}, {Id: fulcio.OID(n), Value: value}}
		e, err := fulcio.ParseExtensions(exts)
		if err != nil || e.Issuer == "" {
			return
		}
		out, err := e.Render()
		if err != nil {
			return // e.g. a value that is not valid UTF-8
		}
		again, err := fulcio.ParseExtensions(out)
		if err != nil {
			t.Fatalf("rendered extensions do not parse: %v", err)
		}
		// GitHub's deprecated fields are read but never written.
		e.GitHubWorkflowTrigger, e.GitHubWorkflowSHA, e.GitHubWorkflowName, e.GitHubWorkflowRepository, e.GitHubWorkflowRef = "", "", "", "", ""
		if again != e {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}
