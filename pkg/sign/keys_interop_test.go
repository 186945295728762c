package sign

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/internal/peertest"
)

// runCosign runs cosign in dir with COSIGN_PASSWORD=password and an
// isolated HOME, and returns its stdout.
func runCosign(t *testing.T, bin, dir, password string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cosign %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// TestInteropCosignKeyLoads: a key pair from `cosign generate-key-pair`
// loads with our loaders, for a normal and an empty password.
func TestInteropCosignKeyLoads(t *testing.T) {
	bin := peertest.Peer(t, "cosign")
	for _, password := range []string{"interop-pw", ""} {
		t.Run("password="+password, func(t *testing.T) {
			dir := t.TempDir()
			runCosign(t, bin, dir, password, "generate-key-pair")
			keyPEM, err := os.ReadFile(filepath.Join(dir, "cosign.key"))
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
			if err != nil {
				t.Fatal(err)
			}
			key, err := LoadPrivateKey(keyPEM, []byte(password))
			if err != nil {
				t.Fatalf("LoadPrivateKey(cosign.key): %v", err)
			}
			pub, err := LoadPublicKey(pubPEM)
			if err != nil {
				t.Fatalf("LoadPublicKey(cosign.pub): %v", err)
			}
			if !pub.(publicKeyEqualer).Equal(key.Public()) {
				t.Fatalf("cosign.pub does not match cosign.key as we load it")
			}
			if ours, _ := PublicKeyPEM(key.Public()); !bytes.Equal(ours, pubPEM) {
				t.Errorf("our PEM of cosign's public key differs:\n%s\nvs cosign.pub:\n%s", ours, pubPEM)
			}
			if _, err := LoadPrivateKey(keyPEM, []byte(password+"x")); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("wrong password: error = %v, want ErrWrongPassword", err)
			}
		})
	}
}

// TestInteropOurKeyWithCosign: cosign signs with a key pair we generated
// (the signature verifies with our public key), prints the same public
// key PEM we wrote, and verifies a signature we made.
func TestInteropOurKeyWithCosign(t *testing.T) {
	bin := peertest.Peer(t, "cosign")
	const password = "ours-pw"
	privPEM, pubPEM, err := GenerateKeyPair([]byte(password))
	if err != nil {
		t.Fatal(err)
	}
	legacyLabel := relabel(t, privPEM, CosignPrivateKeyPEMType)
	key, err := LoadPrivateKey(privPEM, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	legacyN, err := encryptPrivateKey(key, []byte(password), 1<<15)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("signed by cosign with a hallmark key\n")

	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"GenerateKeyPair", privPEM},
		{"ENCRYPTED COSIGN PRIVATE KEY label", legacyLabel},
		{"scrypt N=2^15", legacyN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name string, b []byte) {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write("ours.key", tc.key)
			write("ours.pub", pubPEM)
			write("blob", blob)

			runCosign(t, bin, dir, password, "sign-blob", "--key", "ours.key", "--tlog-upload=false",
				"--output-signature", "sig", "-y", "blob")
			sigText, err := os.ReadFile(filepath.Join(dir, "sig"))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigText)))
			if err != nil {
				t.Fatalf("cosign signature is not base64: %v", err)
			}
			if !verifyBlob(t, pub, blob, sig) {
				t.Errorf("cosign's signature with our key does not verify with our public key")
			}

			out := runCosign(t, bin, dir, password, "public-key", "--key", "ours.key")
			if !bytes.Equal(out, pubPEM) {
				t.Errorf("cosign public-key printed\n%s\nwe wrote\n%s", out, pubPEM)
			}
		})
	}

	t.Run("cosign verifies our signature", func(t *testing.T) {
		dir := t.TempDir()
		ours, err := SignBytes(key, blob)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{
			"ours.pub": pubPEM, "blob": blob, "sig": []byte(base64.StdEncoding.EncodeToString(ours)),
		} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		runCosign(t, bin, dir, "", "verify-blob", "--key", "ours.pub", "--signature", "sig",
			"--insecure-ignore-tlog=true", "blob")
	})
}
