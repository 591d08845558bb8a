package drift

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/redact"
)

// SpecFields names every field in which have (the spec a container was
// created from) differs from svc.Spec, one Field per changed leaf:
// "image", "environment.DB_PASSWORD", "labels.<key>", "mounts./data.source",
// "networks.<name>.aliases", "ports". Lists are rendered as compact JSON;
// absent values are "". Values are shown with the redaction rules of
// present: environment values only for keys in svc.PublicEnv, secret
// digests never, any other value whose key looks secret never, and the
// rest through redact (the service's known secret values, URL passwords,
// secret-looking flags and pairs in command lines and text).
func SpecFields(svc fleets.Service, have fleets.Spec) []Field {
	var fs []Field
	red := redact.New(svc.SecretValues()...)
	walk(nil, tree(svc.Spec), tree(have), func(path []string, want, have any) {
		fs = append(fs, Field{
			Field: strings.Join(path, "."),
			Want:  present(svc, red, path, want),
			Have:  present(svc, red, path, have),
		})
	})
	return fs
}

// keyedLists are the spec lists whose elements have an identity; they are
// compared element by element under that key instead of as one value.
var keyedLists = map[string]string{
	"mounts":   "target",
	"networks": "network",
	"secrets":  "name",
	"configs":  "name",
}

// tree is the spec's JSON encoding as generic values, with keyed lists
// turned into objects.
func tree(s fleets.Spec) map[string]any {
	b, err := json.Marshal(s)
	if err != nil {
		return nil // Spec holds nothing encoding/json rejects
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	for name, key := range keyedLists {
		if l, ok := m[name].([]any); ok {
			m[name] = byKey(l, key)
		}
	}
	return m
}

// byKey indexes a list of objects by their key field, or returns the list
// unchanged when an element lacks the key or two share it.
func byKey(l []any, key string) any {
	out := make(map[string]any, len(l))
	for _, e := range l {
		obj, ok := e.(map[string]any)
		k, isStr := obj[key].(string)
		if !ok || !isStr {
			return l
		}
		if _, dup := out[k]; dup {
			return l
		}
		delete(obj, key)
		out[k] = obj
	}
	return out
}

// walk calls emit for every leaf that differs between want and have. An
// absent object compares as an empty one, so an added key is one leaf.
func walk(path []string, want, have any, emit func(path []string, want, have any)) {
	wm, wIsMap := want.(map[string]any)
	hm, hIsMap := have.(map[string]any)
	if (wIsMap || want == nil) && (hIsMap || have == nil) && (wIsMap || hIsMap) {
		keys := make([]string, 0, len(wm)+len(hm))
		for k := range wm {
			keys = append(keys, k)
		}
		for k := range hm {
			if _, ok := wm[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			walk(append(path[:len(path):len(path)], k), wm[k], hm[k], emit)
		}
		return
	}
	if render(want) != render(have) {
		emit(path, want, have)
	}
}

// render is a value as text: scalars plainly, lists and objects as compact
// JSON, absent as "".
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// durationFields are the spec fields encoded as nanoseconds.
var durationFields = []string{"stop_grace_period", "interval", "timeout", "start_period", "start_interval"}

// present renders one side of a changed leaf for people, applying
// redaction. An absent value stays "", so "added" and "removed" remain
// visible even when the value is redacted. A value under a secret name is
// Redacted whole; the image as a reference (redact.Image: known values
// only, for its name:tag is no pair); a list of words (command,
// entrypoint, healthcheck.test) word by word (redact.Args); any other
// value as text (red.String).
func present(svc fleets.Service, red *redact.Redactor, path []string, v any) string {
	if v == nil {
		return ""
	}
	last := path[len(path)-1]
	switch {
	case path[0] == "environment" && len(path) == 2:
		if !slices.Contains(svc.PublicEnv, last) {
			return Redacted
		}
	case path[0] == "secrets" && last == "digest", path[0] == "secret_env": // SOPS env values: always
		return Redacted
	case path[0] == "configs" && last == "digest":
		return shortDigest(render(v))
	case LooksSecret(last):
		return Redacted
	case len(path) == 1 && last == "image":
		// quay.io/oauth2-proxy/oauth2-proxy:v7.6.0: a name:tag, not a pair.
		return red.Image(render(v))
	}
	if n, ok := v.(json.Number); ok && slices.Contains(durationFields, last) {
		if ns, err := n.Int64(); err == nil {
			return time.Duration(ns).String()
		}
	}
	if words, ok := stringList(v); ok {
		return render(red.Args(words))
	}
	return red.String(render(v))
}

func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return shortID(d)
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return algo + ":" + hex
}

// LooksSecret is redact.LooksSecret, the one judgement of a secret name.
func LooksSecret(name string) bool { return redact.LooksSecret(name) }

// stringList returns a list of strings as one (a command line).
func stringList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	words := make([]string, len(l))
	for i, e := range l {
		w, ok := e.(string)
		if !ok {
			return nil, false
		}
		words[i] = w
	}
	return words, true
}
