package source

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Error classes. Test with errors.Is.
var (
	// ErrUnreachable: the remote could not be listed or fetched (network,
	// server or authentication failure). The caller retries with backoff.
	ErrUnreachable = errors.New("source unreachable")
	// ErrAuth: the remote refused the credentials, or the SSH host key is
	// unknown or changed. Such an error is also ErrUnreachable.
	ErrAuth = errors.New("authentication failed")
	// ErrRefNotFound: the remote (or local repository) has no such ref or
	// commit.
	ErrRefNotFound = errors.New("ref not found")
	// ErrConfig: the Config or Auth is invalid; retrying cannot help.
	ErrConfig = errors.New("invalid source config")
)

// sourceError is an error whose message has been redacted of secrets. It
// unwraps to its classes and to the original cause (for errors.Is against
// go-git sentinels), but Error never prints the cause unredacted.
type sourceError struct {
	msg   string
	kinds []error
	cause error
}

func (e *sourceError) Error() string { return e.msg }

func (e *sourceError) Unwrap() []error {
	errs := append([]error(nil), e.kinds...)
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// redactor removes secrets from messages.
type redactor []string

func (r redactor) redact(s string) string {
	for _, secret := range r {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

// wrap builds a classified, redacted error: "<op> <what>: <cause>".
func (r redactor) wrap(cause error, op string, kinds ...error) error {
	msg := op
	if cause != nil {
		msg = op + ": " + cause.Error()
	}
	return &sourceError{msg: r.redact(msg), kinds: kinds, cause: cause}
}

// remoteError classifies an error from listing or fetching a remote.
func (r redactor) remoteError(err error, op string) error {
	var kinds []error
	switch {
	case errors.Is(err, ErrRefNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository):
		kinds = []error{ErrRefNotFound}
	case isAuthError(err):
		kinds = []error{ErrUnreachable, ErrAuth}
	default:
		kinds = []error{ErrUnreachable}
	}
	return r.wrap(err, op, kinds...)
}

func isAuthError(err error) bool {
	var hk *hostKeyError
	var ne net.Error
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.As(err, &hk):
		return true
	case errors.As(err, &ne):
		return false
	}
	// x/crypto/ssh reports a refused key only as text.
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

func configError(field, format string, args ...any) error {
	return &sourceError{
		msg:   fmt.Sprintf("source %s: %s", field, fmt.Sprintf(format, args...)),
		kinds: []error{ErrConfig},
	}
}
