package server

import (
	"encoding/hex"
	"errors"
	"testing"
)

var (
	testSecret = []byte("s3cret")
	testBody   = []byte(`{"ref":"refs/heads/main","after":"1a2b3c4d5e6f"}`)
	testSig    = hex.EncodeToString(Sign(testSecret, testBody))
)

// flip changes the last hex digit of sig: a signature that is right but
// for one bit.
func flip(sig string) string {
	last := sig[len(sig)-1]
	if last == '0' {
		return sig[:len(sig)-1] + "1"
	}
	return sig[:len(sig)-1] + "0"
}

func TestVerifyPrefixed(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"valid", testSecret, testBody, "sha256=" + testSig, nil},
		{"uppercase hex", testSecret, testBody, "sha256=" + upper(testSig), nil},
		{"missing", testSecret, testBody, "", ErrNoSignature},
		{"no prefix", testSecret, testBody, testSig, ErrBadSignature},
		{"sha1 prefix", testSecret, testBody, "sha1=" + testSig, ErrBadSignature},
		{"one bit off", testSecret, testBody, "sha256=" + flip(testSig), ErrBadSignature},
		{"truncated", testSecret, testBody, "sha256=" + testSig[:32], ErrBadSignature},
		{"longer", testSecret, testBody, "sha256=" + testSig + "00", ErrBadSignature},
		{"not hex", testSecret, testBody, "sha256=zz" + testSig[2:], ErrBadSignature},
		{"other body", testSecret, []byte(`{}`), "sha256=" + testSig, ErrBadSignature},
		{"other secret", []byte("other"), testBody, "sha256=" + testSig, ErrBadSignature},
		{"no secret", nil, testBody, "sha256=" + testSig, ErrNoSecret},
		{"empty body signed", testSecret, nil, "sha256=" + hex.EncodeToString(Sign(testSecret, nil)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, verify := range map[string]func([]byte, []byte, string) error{
				"github": VerifyGitHub, "generic": VerifyGeneric,
			} {
				if err := verify(tt.secret, tt.body, tt.header); !errors.Is(err, tt.want) {
					t.Errorf("%s: got %v, want %v", name, err, tt.want)
				}
			}
		})
	}
}

func TestVerifyGitea(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		header string
		want   error
	}{
		{"valid", testSecret, testSig, nil},
		{"with spaces", testSecret, " " + testSig + " ", nil},
		{"missing", testSecret, "", ErrNoSignature},
		{"github style prefix", testSecret, "sha256=" + testSig, ErrBadSignature},
		{"one bit off", testSecret, flip(testSig), ErrBadSignature},
		{"truncated", testSecret, testSig[:10], ErrBadSignature},
		{"no secret", nil, testSig, ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyGitea(tt.secret, testBody, tt.header); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyGitLab(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		header string
		want   error
	}{
		{"valid", testSecret, "s3cret", nil},
		{"missing", testSecret, "", ErrNoSignature},
		{"prefix of secret", testSecret, "s3cre", ErrBadSignature},
		{"secret plus more", testSecret, "s3cret!", ErrBadSignature},
		{"case differs", testSecret, "S3cret", ErrBadSignature},
		{"no secret", nil, "s3cret", ErrNoSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyGitLab(tt.secret, tt.header); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestEqualSecret covers the constant-time comparison used for the GitLab
// token and the API bearer token. Its timing safety comes from comparing
// fixed-size digests with hmac.Equal (crypto/subtle), so lengths and
// common prefixes do not change the work done; that is by construction,
// not measured here, since a timing measurement in a test is flaky.
func TestEqualSecret(t *testing.T) {
	tests := []struct {
		want, got string
		equal     bool
	}{
		{"token", "token", true},
		{"token", "tokeN", false},
		{"token", "toke", false},
		{"token", "token\x00", false},
		{"token", "", false},
		{"", "", true}, // callers refuse an empty secret before comparing
	}
	for _, tt := range tests {
		if got := equalSecret([]byte(tt.want), []byte(tt.got)); got != tt.equal {
			t.Errorf("equalSecret(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.equal)
		}
	}
}

func TestBearerMatches(t *testing.T) {
	tests := []struct {
		header string
		ok     bool
	}{
		{"Bearer tok", true},
		{"bearer tok", true},
		{"Bearer  tok ", true},
		{"Bearer tok2", false},
		{"Bearer to", false},
		{"Basic tok", false},
		{"tok", false},
		{"Bearer", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := bearerMatches(tt.header, "tok"); got != tt.ok {
			t.Errorf("bearerMatches(%q) = %v, want %v", tt.header, got, tt.ok)
		}
	}
}

func TestRefMatches(t *testing.T) {
	tests := []struct {
		ref, branch string
		ok          bool
	}{
		{"refs/heads/main", "main", true},
		{"refs/heads/main", "refs/heads/main", true},
		{"refs/heads/dev", "main", false},
		{"refs/heads/main-2", "main", false},
		{"refs/tags/main", "main", false},
		{"refs/tags/v1", "refs/tags/v1", true},
		{"refs/heads/anything", "", true},
	}
	for _, tt := range tests {
		if got := refMatches(tt.ref, tt.branch); got != tt.ok {
			t.Errorf("refMatches(%q, %q) = %v, want %v", tt.ref, tt.branch, got, tt.ok)
		}
	}
}

func TestParsePush(t *testing.T) {
	tests := []struct {
		name, body, ctype string
		want              pushEvent
		wantErr           bool
	}{
		{"json", `{"ref":"refs/heads/main","after":"abc"}`, "application/json", pushEvent{"refs/heads/main", "abc"}, false},
		{"form", "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D", "application/x-www-form-urlencoded", pushEvent{Ref: "refs/heads/main"}, false},
		{"empty", "", "", pushEvent{}, false},
		{"blank", " \n", "application/json", pushEvent{}, false},
		{"no ref", `{"other":1}`, "", pushEvent{}, false},
		{"bad json", `{"ref":`, "application/json", pushEvent{}, true},
		{"ref not a string", `{"ref":1}`, "", pushEvent{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePush([]byte(tt.body), tt.ctype)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPushReason(t *testing.T) {
	for after, want := range map[string]string{
		"1a2b3c4d5e6f": "webhook github push 1a2b3c4",
		"abc":          "webhook github push abc",
		"":             "webhook github push",
	} {
		if got := pushReason("github", after); got != want {
			t.Errorf("pushReason(%q) = %q, want %q", after, got, want)
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
