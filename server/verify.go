package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Signature errors. All of them map to 401, except ErrNoSecret, which means
// the receiver is not configured.
var (
	ErrNoSecret     = errors.New("no webhook secret configured")
	ErrNoSignature  = errors.New("missing signature")
	ErrBadSignature = errors.New("signature does not match")
)

// VerifyGitHub checks GitHub's X-Hub-Signature-256 header,
// "sha256=<hex HMAC-SHA256 of body>".
func VerifyGitHub(secret, body []byte, header string) error {
	return verifyPrefixed(secret, body, header)
}

// VerifyGeneric checks fleetd's X-Fleetd-Signature header; the format is
// GitHub's, "sha256=<hex HMAC-SHA256 of body>".
func VerifyGeneric(secret, body []byte, header string) error {
	return verifyPrefixed(secret, body, header)
}

// VerifyGitea checks Gitea's X-Gitea-Signature (or Forgejo's
// X-Forgejo-Signature) header: the bare hex HMAC-SHA256 of body.
func VerifyGitea(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if header == "" {
		return ErrNoSignature
	}
	return verifyHex(secret, body, header)
}

// VerifyGitLab checks GitLab's X-Gitlab-Token header, which carries the
// secret itself. The comparison takes the same time whatever the header.
func VerifyGitLab(secret []byte, header string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if header == "" {
		return ErrNoSignature
	}
	if !equalSecret(secret, []byte(header)) {
		return ErrBadSignature
	}
	return nil
}

// verifyPrefixed checks a "sha256=<hex>" header.
func verifyPrefixed(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if header == "" {
		return ErrNoSignature
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	return verifyHex(secret, body, hexSig)
}

// verifyHex compares a hex HMAC-SHA256 with the one of body in constant
// time.
func verifyHex(secret, body []byte, hexSig string) error {
	got, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(got, Sign(secret, body)) {
		return ErrBadSignature
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body with secret; senders hex-encode it.
func Sign(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}

// equalSecret compares two secrets in constant time. Hashing first makes
// the time independent of the lengths too (hmac.Equal returns early on a
// length mismatch).
func equalSecret(want, got []byte) bool {
	w, g := sha256.Sum256(want), sha256.Sum256(got)
	return hmac.Equal(w[:], g[:])
}
