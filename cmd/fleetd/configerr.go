package main

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fleetd/fleetd/hint"
)

// yaml.v3's words for an unknown key and a value of the wrong type.
var (
	unknownField    = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	cannotUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// explainConfig rewrites yaml's type errors in the configuration's own
// words: the line, the key with its section, what was expected, and for a
// misspelled key the one meant. Other errors are wrapped as they are.
func explainConfig(path string, data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	sections := configSections()
	var lines []string
	for _, msg := range te.Errors {
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			sec := sections[m[3]]
			lines = append(lines, fmt.Sprintf("line %s: unknown key %s%s (%s takes %s)", m[1], join(sec.path, m[2]),
				hint.DidYouMean(m[2], sec.keys), cmpOrRoot(sec.path), strings.Join(sec.keys, ", ")))
			continue
		}
		if m := cannotUnmarshal.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			key := keyAt(data, line, m[3])
			lines = append(lines, fmt.Sprintf("line %s: %s: %q is not %s", m[1], cmpOrValue(key), m[3], kindOf(m[4])))
			continue
		}
		lines = append(lines, msg)
	}
	return fmt.Errorf("config %s: %s", path, strings.Join(lines, "; "))
}

func join(section, key string) string {
	if section == "" {
		return key
	}
	return section + "." + key
}

func cmpOrRoot(section string) string {
	if section == "" {
		return "the configuration"
	}
	return section
}

func cmpOrValue(key string) string {
	if key == "" {
		return "a value"
	}
	return key
}

// kindOf says what a Go type wants, in words.
func kindOf(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "main."):
		return "a map of keys"
	}
	return "a " + goType
}

// section is a part of the configuration: its dotted path and its keys.
type section struct {
	path string
	keys []string
}

// configSections maps the Go type of every section of daemonConfig, as
// yaml names it, to the section's path and keys.
func configSections() map[string]section {
	out := map[string]section{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		var keys []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" { // inline
				walk(f.Type, path)
				if s, ok := out[f.Type.String()]; ok {
					keys = append(keys, s.keys...)
				}
				continue
			}
			keys = append(keys, name)
			walk(f.Type, join(path, name))
		}
		slices.Sort(keys)
		out[t.String()] = section{path: path, keys: keys}
	}
	walk(reflect.TypeOf(daemonConfig{}), "")
	return out
}

// keyAt finds the dotted key whose value on line is value.
func keyAt(data []byte, line int, value string) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return ""
	}
	var found string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for i, c := range n.Content {
				p := path
				if n.Kind == yaml.SequenceNode {
					p = fmt.Sprintf("%s[%d]", path, i)
				}
				walk(c, p)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if v.Line == line && v.Value == value && found == "" {
					found = p
				}
				walk(v, p)
			}
		}
	}
	walk(&root, "")
	return found
}
