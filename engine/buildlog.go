package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
)

// buildMessage is one message of a build's progress stream: output lines
// of the classic builder (Stream), aux messages (an image ID; BuildKit's
// status as moby.buildkit.trace), or the error that ended the build.
type buildMessage struct {
	ID          string                    `json:"id"`
	Stream      string                    `json:"stream"`
	ErrorDetail *struct{ Message string } `json:"errorDetail"`
	Error       string                    `json:"error"`
	Aux         json.RawMessage           `json:"aux"`
}

const (
	auxTrace   = "moby.buildkit.trace"
	auxImageID = "moby.image.id"
)

// readBuildStream consumes a build's progress stream to its end, handing
// its output to tl line by line, and returns the image ID it reported. The
// daemon answers 200 even when the build fails: the stream's error message
// is the error.
func readBuildStream(r io.Reader, tl *traceLog) (streamResult, error) {
	defer tl.flush()
	var res streamResult
	dec := json.NewDecoder(r)
	for {
		var msg buildMessage
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read progress: %w", err)
		}
		if text := messageError(streamMessage{ErrorDetail: msg.ErrorDetail, Error: msg.Error}); text != "" {
			return res, errors.New(text)
		}
		tl.text("", msg.Stream)
		switch {
		case len(msg.Aux) == 0:
		case msg.ID == auxTrace:
			tl.trace(msg.Aux)
		default: // the classic builder's {"ID": ...}, or BuildKit's moby.image.id
			var aux struct{ ID string }
			if json.Unmarshal(msg.Aux, &aux) == nil && aux.ID != "" {
				res.ImageID = aux.ID
			}
		}
	}
}

// traceLog renders a build's output as lines, as `docker build
// --progress=plain` does: BuildKit's steps numbered in the order they
// appear ("#3 [2/3] COPY app /app", "#3 DONE 0.1s", "#4 CACHED", "#5
// ERROR: ..."), each step's output prefixed with its number, and the
// classic builder's lines as they are.
type traceLog struct {
	logf    func(string)
	steps   map[string]*step
	partial map[string]string // an unfinished line, by step digest ("" for the classic builder)
}

type step struct {
	n                     int
	named, cached, closed bool
}

func newTraceLog(logf func(string)) *traceLog {
	if logf == nil {
		logf = func(string) {}
	}
	return &traceLog{logf: logf, steps: map[string]*step{}, partial: map[string]string{}}
}

// trace renders one moby.buildkit.trace message: a JSON string holding a
// StatusResponse of BuildKit's control API. What it cannot decode is
// skipped, as the Docker CLI does.
func (t *traceLog) trace(aux json.RawMessage) {
	var data []byte
	if json.Unmarshal(aux, &data) != nil {
		return
	}
	var st controlapi.StatusResponse
	if st.UnmarshalVT(data) != nil {
		return
	}
	for _, v := range st.Vertexes {
		t.vertex(v)
	}
	for _, l := range st.Logs {
		t.text(l.Vertex, string(l.Msg))
	}
	for _, w := range st.Warnings {
		t.logf(fmt.Sprintf("%sWARN: %s", t.prefix(w.Vertex), bytes.TrimSpace(w.Short)))
	}
}

func (t *traceLog) vertex(v *controlapi.Vertex) {
	s := t.step(v.Digest)
	if !s.named && (v.Started != nil || v.Cached || v.Completed != nil) {
		s.named = true
		t.logf(fmt.Sprintf("#%d %s", s.n, v.Name))
	}
	if v.Cached && !s.cached && !s.closed {
		s.cached = true
		t.logf(fmt.Sprintf("#%d CACHED", s.n))
	}
	if v.Completed == nil || s.closed {
		return
	}
	s.closed = true
	t.flushStep(v.Digest)
	switch {
	case v.Error != "":
		t.logf(fmt.Sprintf("#%d ERROR: %s", s.n, v.Error))
	case !s.cached && v.Started != nil:
		took := v.Completed.AsTime().Sub(v.Started.AsTime())
		t.logf(fmt.Sprintf("#%d DONE %.1fs", s.n, took.Seconds()))
	}
}

func (t *traceLog) step(digest string) *step {
	s, ok := t.steps[digest]
	if !ok {
		s = &step{n: len(t.steps) + 1}
		t.steps[digest] = s
	}
	return s
}

func (t *traceLog) prefix(digest string) string {
	if digest == "" {
		return ""
	}
	return fmt.Sprintf("#%d ", t.step(digest).n)
}

// text hands out the complete lines of a step's (or the classic
// builder's) output, keeping an unfinished last line for the next chunk.
func (t *traceLog) text(digest, chunk string) {
	if chunk == "" {
		return
	}
	lines := strings.Split(t.partial[digest]+chunk, "\n")
	t.partial[digest] = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		t.line(digest, l)
	}
}

func (t *traceLog) line(digest, l string) {
	l = strings.TrimRight(l, "\r")
	if strings.TrimSpace(l) != "" {
		t.logf(t.prefix(digest) + l)
	}
}

func (t *traceLog) flushStep(digest string) {
	if l := t.partial[digest]; l != "" {
		delete(t.partial, digest)
		t.line(digest, l)
	}
}

// flush hands out the unfinished lines left at the end of the stream.
func (t *traceLog) flush() {
	for digest := range t.partial {
		t.flushStep(digest)
	}
}

// minRedacted is the shortest secret text redacted from build output:
// shorter ones would blank out ordinary words.
const minRedacted = 3

// redacting wraps logf so that no line shows a build secret's contents,
// whole or one of its lines (an RUN that prints it would); it never
// returns nil.
func redacting(logf func(string), secrets map[string][]byte) func(string) {
	if logf == nil {
		return func(string) {}
	}
	words := secretWords(secrets)
	if len(words) == 0 {
		return logf
	}
	return func(line string) { logf(redact(line, words)) }
}

// redactErr returns err with the build secrets' contents blanked out of
// its message, still wrapping it for classification.
func redactErr(err error, secrets map[string][]byte) error {
	if err == nil {
		return nil
	}
	words := secretWords(secrets)
	if msg := redact(err.Error(), words); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func secretWords(secrets map[string][]byte) []string {
	var words []string
	for _, data := range secrets {
		text := strings.TrimSpace(string(data))
		for _, w := range append([]string{text}, strings.Split(text, "\n")...) {
			if w = strings.TrimSpace(w); len(w) >= minRedacted {
				words = append(words, w)
			}
		}
	}
	// Longest first, so a whole secret goes before one of its lines.
	slices.SortFunc(words, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return words
}

func redact(s string, words []string) string {
	for _, w := range words {
		s = strings.ReplaceAll(s, w, "[redacted]")
	}
	return s
}
