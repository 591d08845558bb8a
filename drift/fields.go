package drift

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/fleets"
)

// SpecFields names every field in which have (the spec a container was
// created from) differs from svc.Spec, one Field per changed leaf:
// "image", "environment.DB_PASSWORD", "labels.<key>", "mounts./data.source",
// "networks.<name>.aliases", "ports". Lists are rendered as compact JSON;
// absent values are "". Values are shown with the redaction rules of
// present: environment values only for keys in svc.PublicEnv, secret
// digests never, and any other value whose key looks secret never.
func SpecFields(svc fleets.Service, have fleets.Spec) []Field {
	var fs []Field
	walk(nil, tree(svc.Spec), tree(have), func(path []string, want, have any) {
		fs = append(fs, Field{
			Field: strings.Join(path, "."),
			Want:  present(svc, path, want),
			Have:  present(svc, path, have),
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
// visible even when the value is redacted.
func present(svc fleets.Service, path []string, v any) string {
	if v == nil {
		return ""
	}
	last := path[len(path)-1]
	switch {
	case path[0] == "environment" && len(path) == 2:
		if !slices.Contains(svc.PublicEnv, last) {
			return Redacted
		}
	case path[0] == "secrets" && last == "digest":
		return Redacted
	case path[0] == "configs" && last == "digest":
		return shortDigest(render(v))
	case LooksSecret(last) || listLooksSecret(v):
		return Redacted
	}
	if n, ok := v.(json.Number); ok && slices.Contains(durationFields, last) {
		if ns, err := n.Int64(); err == nil {
			return time.Duration(ns).String()
		}
	}
	return render(v)
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

// secretWords are the name fragments that mark a value as secret.
var secretWords = []string{"PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH"}

// LooksSecret reports whether a key or word names a secret (PASSWORD,
// API_KEY, auth_token, …), case-insensitively.
func LooksSecret(name string) bool {
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return false
}

// listLooksSecret catches secrets passed in a command line
// (["--db-password", "hunter2"]): a list with a secret-looking element is
// redacted whole.
func listLooksSecret(v any) bool {
	l, ok := v.([]any)
	if !ok {
		return false
	}
	for _, e := range l {
		if s, ok := e.(string); ok && LooksSecret(s) {
			return true
		}
	}
	return false
}
