package fleets

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/fleetd/fleetd/hint"
)

// composeSchema is the Compose specification's JSON schema, as compose-go
// ships it, compiled once.
var composeSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema.Schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("compose-spec.json", doc); err != nil {
		return nil, err
	}
	c.RegisterFormat(&jsonschema.Format{Name: "duration", Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return errors.New("expected string")
		}
		_, err := time.ParseDuration(s)
		return err
	}})
	return c.Compile("compose-spec.json")
})

// schemaProblems checks every compose file of a fleet, as written, against
// the Compose schema and reports each violation at its field: compose-go
// stops at the first one, and a user fixing files wants them all in one
// run. A value with a $ in it is left alone (interpolation decides what it
// is), and so is a field a problem names already.
func (r *report) schemaProblems() {
	sch, err := composeSchema()
	if err != nil {
		return // compose-go reported it its own way
	}
	seen := map[string]bool{}
	for _, p := range r.problems {
		seen[p.Service+"\x00"+p.Field] = true
	}
	for _, f := range r.files {
		if f.root == nil {
			continue
		}
		var doc any
		if f.root.Decode(&doc) != nil {
			continue
		}
		raw, err := jsonCompatible(doc)
		if err != nil {
			continue
		}
		var verr *jsonschema.ValidationError
		if !errors.As(sch.Validate(raw), &verr) {
			continue
		}
		for _, leaf := range leaves(verr) {
			loc := leaf.InstanceLocation
			if interpolated(raw, loc) {
				continue
			}
			path := strings.Join(loc, ".")
			service, field := "", path
			if len(loc) >= 2 && loc[0] == "services" {
				service, field = loc[1], strings.Join(loc[2:], ".")
			}
			if seen[service+"\x00"+field] {
				continue
			}
			seen[service+"\x00"+field] = true
			r.atPath(path, schemaMessage(leaf))
		}
	}
}

// leaves are the violations to report: every independent one, and of
// alternatives (anyOf, oneOf) the most specific, as compose-go picks it.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		var best *jsonschema.ValidationError
		for _, c := range e.Causes {
			for _, l := range leaves(c) {
				if best == nil || len(l.InstanceLocation) > len(best.InstanceLocation) {
					best = l
				}
			}
		}
		return []*jsonschema.ValidationError{best}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	slices.SortStableFunc(out, func(a, b *jsonschema.ValidationError) int {
		return strings.Compare(strings.Join(a.InstanceLocation, "."), strings.Join(b.InstanceLocation, "."))
	})
	return out
}

// schemaMessage says a violation as fleetd says compose-go's.
func schemaMessage(e *jsonschema.ValidationError) string {
	switch k := e.ErrorKind.(type) {
	case *kind.FalseSchema:
		return unknownKey(strings.Join(e.InstanceLocation, "."))
	case *kind.AdditionalProperties:
		return fmt.Sprintf("unknown key %s (not in the Compose specification)", strings.Join(k.Properties, ", "))
	case *kind.Type:
		return fmt.Sprintf("must be %s, not %s", article(strings.Join(k.Want, " or ")), article(k.Got))
	}
	return e.ErrorKind.LocalizedString(message.NewPrinter(language.English))
}

// jsonCompatible turns a decoded YAML document into what the validator
// takes (maps with string keys, JSON numbers).
func jsonCompatible(doc any) (any, error) {
	b, err := json.Marshal(stringKeys(doc))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
}

func stringKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = stringKeys(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(k)] = stringKeys(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = stringKeys(e)
		}
		return out
	}
	return v
}

// interpolated reports whether the value at loc, or any value under it,
// holds a $ (a variable compose-go interpolates before it validates).
func interpolated(doc any, loc []string) bool {
	v := doc
	for _, k := range loc {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= len(m) {
				return false
			}
			v = m[i]
		default:
			return false
		}
	}
	return holdsDollar(v)
}

func holdsDollar(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, "$")
	case map[string]any:
		for _, e := range v {
			if holdsDollar(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if holdsDollar(e) {
				return true
			}
		}
	}
	return false
}

// article puts "a" or "an" before a type's name.
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

// schemaKeys are the keys the Compose schema allows at the top level and
// in a service, for "did you mean".
var schemaKeys = sync.OnceValue(func() map[string][]string {
	type object struct {
		Properties map[string]any `json:"properties"`
		AllOf      []struct {
			Ref string `json:"$ref"`
		} `json:"allOf"`
	}
	var doc struct {
		object
		Defs map[string]object `json:"$defs"`
	}
	out := map[string][]string{}
	if json.Unmarshal([]byte(schema.Schema), &doc) != nil {
		return out
	}
	out[""] = slices.Sorted(maps.Keys(doc.Properties))
	// A service's keys: its own and those of the definitions it is all of.
	svc := doc.Defs["service"]
	keys := slices.Collect(maps.Keys(svc.Properties))
	for _, ref := range svc.AllOf {
		keys = append(keys, slices.Collect(maps.Keys(doc.Defs[strings.TrimPrefix(ref.Ref, "#/$defs/")].Properties))...)
	}
	slices.Sort(keys)
	out["services.*"] = slices.Compact(keys)
	return out
})

// unknownKey says that the key at path is not in the Compose
// specification, with the key meant when one is close.
func unknownKey(path string) string {
	parts := strings.Split(path, ".")
	parent := ""
	if len(parts) == 3 && parts[0] == "services" {
		parent = "services.*"
	} else if len(parts) != 1 {
		return "unknown key (not in the Compose specification)"
	}
	return "unknown key (not in the Compose specification)" + hint.DidYouMean(parts[len(parts)-1], schemaKeys()[parent])
}
