package fleets

import "fmt"

// SecretBytes holds the contents of a secret or config that has no file to
// be read from at create time (secret environment:, config content:). It
// never prints: fmt verbs and JSON render it as "[redacted]", so a spec or
// FileRef that reaches a log or a message cannot leak it.
type SecretBytes []byte

const redacted = "[redacted]"

func (SecretBytes) String() string { return redacted }

// GoString hides the value from %#v.
func (SecretBytes) GoString() string { return redacted }

// Format hides the value from every verb, %x and %d included.
func (SecretBytes) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// MarshalJSON hides the value from JSON.
func (SecretBytes) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
