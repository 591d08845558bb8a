package dockertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// message is the part of the engine's JSON message stream that matters here
// (pkg/jsonmessage has the full type, at the cost of terminal dependencies).
type message struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// streamError is an error the engine reported inside a message stream.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// streamTail is how much of a build, push or pull log an error carries.
const streamTail = 20

// readStream consumes a JSON message stream (build, push, pull) to its end
// and returns the first error message in it, with the lines that led there.
func readStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var lines []string
	for {
		var msg message
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read message stream: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			msg.Error = msg.ErrorDetail.Message
		}
		if msg.Error != "" {
			return fmt.Errorf("%w\n%s", &streamError{msg.Error}, strings.Join(lines, "\n"))
		}
		if line := strings.TrimSpace(msg.Stream + " " + msg.Status + " " + msg.ID); line != "" {
			lines = append(lines, line)
			if len(lines) > streamTail {
				lines = lines[1:]
			}
		}
	}
}
