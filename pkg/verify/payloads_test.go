package verify_test

import (
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// TestPayloadsShared: layers of one blob sharing a Payloads read it once
// (the second layer's content is the first's parse) and still each get
// their own verdict; what Verify adds to a verified payload for output
// (the certificate's subject, the bundle) never leaks into the shared
// parse, i.e. into another layer's signed annotations.
func TestPayloadsShared(t *testing.T) {
	subject := string(readTestdata(t, "cosign2-signature.subject"))
	opts := realOptions(t)
	good := realLayer(t)
	good.Payloads = verify.NewPayloads()
	broken := good
	broken.Annotations = map[string]string{}
	for k, v := range good.Annotations {
		broken.Annotations[k] = v
	}
	sig := good.Annotations[oci.AnnotationSignature]
	broken.Annotations[oci.AnnotationSignature] = sig[:20] + "AAAA" + sig[24:]

	for round := 0; round < 2; round++ {
		v, err := verify.VerifyLayer(good, subject, opts)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if v.Claims.Optional["Subject"] != realIdentity {
			t.Errorf("round %d: output claims lack the certificate subject: %v", round, v.Claims.Optional)
		}
		for _, k := range []string{"Subject", "Bundle", "Issuer"} {
			if _, ok := v.Annotations[k]; ok {
				t.Errorf("round %d: %q, added for output, became a signed annotation: %v", round, k, v.Annotations)
			}
		}
		_, err = verify.VerifyLayer(broken, subject, opts)
		checkErr(t, err, verify.CheckSignature, "")
	}
	if !verify.SharesParse(good, broken) {
		t.Error("two layers of one blob given one Payloads parsed it twice")
	}
	alone := good
	alone.Payloads = nil
	if verify.SharesParse(alone, good) {
		t.Error("a layer without Payloads shares a parse")
	}

	// A blob that does not match its digest fails every layer that names it.
	tampered := good
	tampered.Payloads = verify.NewPayloads()
	tampered.Payload = []byte(strings.Replace(string(good.Payload), "critical", "Critical", 1))
	for i := 0; i < 2; i++ {
		_, err := verify.VerifyLayer(tampered, subject, opts)
		checkErr(t, err, verify.CheckIntegrity, "not to its layer digest")
	}
}
