package sopsfile

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A YAML or JSON file sops encrypted value by value: a document whose
// top-level "sops" mapping is the metadata, every other leaf a value
// (sops.Tree.Decrypt walks them in order, a list's items under their
// list's path). Comments, which sops encrypts too and leaves out of the
// MAC, are dropped from the plaintext.

type yamlTree struct {
	doc  yaml.Node
	md   *metadata
	json bool
}

func loadYAMLTree(data []byte, isJSON bool) (*yamlTree, error) {
	t := &yamlTree{json: isJSON}
	if err := yaml.Unmarshal(data, &t.doc); err != nil {
		return nil, fmt.Errorf("not a sops file: %w", err)
	}
	if t.doc.Kind != yaml.DocumentNode || len(t.doc.Content) != 1 || t.doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a sops file: the top is not a mapping")
	}
	root := t.doc.Content[0]
	if err := checkMapping(root, nil); err != nil {
		return nil, fmt.Errorf("not a sops file: %w", err)
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "sops" {
			continue
		}
		var raw any
		if err := root.Content[i+1].Decode(&raw); err != nil {
			return nil, fmt.Errorf("sops metadata: %w", err)
		}
		md, err := decodeMetadata(jsonable(raw))
		if err != nil {
			return nil, err
		}
		t.md = md
		root.Content = append(root.Content[:i:i], root.Content[i+2:]...)
		return t, nil
	}
	return nil, errors.New(`not a sops file: no "sops" key`)
}

// jsonable turns what yaml decodes (map[string]any, time.Time) into what
// encoding/json takes.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	case time.Time:
		return v.Format(time.RFC3339)
	}
	return v
}

// decrypt decrypts every leaf in place and checks the MAC.
func (t *yamlTree) decrypt(key []byte) error {
	h := sha512.New()
	if t.md.MACOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	if err := t.walk(t.doc.Content[0], nil, key, h.Write); err != nil {
		return err
	}
	return checkMAC(t.md, key, fmt.Sprintf("%X", h.Sum(nil)))
}

func (t *yamlTree) walk(n *yaml.Node, path []string, key []byte, mac func([]byte) (int, error)) error {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	switch n.Kind {
	case yaml.MappingNode:
		if err := checkMapping(n, path); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			n.Content[i].HeadComment, n.Content[i].LineComment, n.Content[i].FootComment = "", "", ""
			p := append(path[:len(path):len(path)], n.Content[i].Value)
			if err := t.walk(n.Content[i+1], p, key, mac); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		if n.Tag != "!!seq" {
			return fmt.Errorf("value %s: a %s list is not supported", strings.Join(path, "."), n.Tag)
		}
		for _, c := range n.Content {
			if err := t.walk(c, path, key, mac); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return t.leaf(n, path, key, mac)
	default:
		return errors.New("YAML aliases are not supported in a sops file")
	}
	return nil
}

func (t *yamlTree) leaf(n *yaml.Node, path []string, key []byte, mac func([]byte) (int, error)) error {
	if n.Tag == "!!null" {
		// sops walks no nil, and emit writes the value as it stands: a
		// null must be one, not text under a !!null tag.
		if !nullValues[n.Value] {
			return fmt.Errorf("%s: a !!null tag on a value that is not null", strings.Join(path, "."))
		}
		return nil
	}
	encrypted := t.md.encryptsPath(path)
	if !encrypted {
		if !t.md.MACOnlyEncrypted {
			b, err := scalarBytes(n)
			if err != nil {
				return fmt.Errorf("value %s: %w", strings.Join(path, "."), err)
			}
			mac(b)
		}
		return nil
	}
	v, typ, b, err := decryptTyped(n.Value, key, strings.Join(path, ":")+":")
	if err != nil {
		return fmt.Errorf("value %s: %w", strings.Join(path, "."), err)
	}
	n.Value, n.Style = v, 0
	n.Tag = map[string]string{"int": "!!int", "float": "!!float", "bool": "!!bool"}[typ]
	if n.Tag == "" {
		n.Tag = "!!str"
	}
	mac(b)
	return nil
}

// nullValues are the spellings of a YAML null.
var nullValues = map[string]bool{"": true, "~": true, "null": true, "Null": true, "NULL": true}

// checkMapping refuses what sops's YAML store refuses and yaml.v3 parses
// into a node all the same: duplicate keys (only one of the values would
// be MACed and decrypted as sops sees the file), keys that are not
// scalars, and a tag other than a mapping's.
func checkMapping(n *yaml.Node, path []string) error {
	where := strings.Join(path, ".")
	if where == "" {
		where = "the top"
	}
	if n.Tag != "!!map" {
		return fmt.Errorf("%s: a %s mapping is not supported", where, n.Tag)
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || (k.Tag == "!!null" && !nullValues[k.Value]) {
			return fmt.Errorf("%s: a key that is not a scalar is not supported", where)
		}
		if seen[k.Value] {
			return fmt.Errorf("%s: duplicate key %q", where, k.Value)
		}
		seen[k.Value] = true
	}
	return nil
}

// scalarBytes is what sops.ToBytes makes of a clear scalar as its store
// decodes it.
func scalarBytes(n *yaml.Node) ([]byte, error) {
	switch n.Tag {
	case "!!int":
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			return nil, err
		}
		return []byte(strconv.FormatInt(i, 10)), nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return []byte(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		if b {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case "!!str":
		return []byte(n.Value), nil
	}
	return nil, fmt.Errorf("a %s value is not supported", n.Tag)
}

// encryptsPath is sops.Tree.shouldBeEncrypted for a value's path.
func (md *metadata) encryptsPath(path []string) bool {
	encrypted := true
	anyOf := func(f func(string) bool) bool {
		for _, p := range path {
			if f(p) {
				return true
			}
		}
		return false
	}
	if md.UnencryptedSuffix != "" && anyOf(func(p string) bool { return strings.HasSuffix(p, md.UnencryptedSuffix) }) {
		encrypted = false
	}
	if md.EncryptedSuffix != "" {
		encrypted = anyOf(func(p string) bool { return strings.HasSuffix(p, md.EncryptedSuffix) })
	}
	if md.UnencryptedRegex != "" && anyOf(func(p string) bool { ok, _ := regexp.MatchString(md.UnencryptedRegex, p); return ok }) {
		encrypted = false
	}
	if md.EncryptedRegex != "" {
		encrypted = anyOf(func(p string) bool { ok, _ := regexp.MatchString(md.EncryptedRegex, p); return ok })
	}
	return encrypted
}

// emit writes the plaintext document: YAML indented as sops writes it, or
// JSON.
func (t *yamlTree) emit() ([]byte, error) {
	if t.json {
		var b bytes.Buffer
		if err := writeJSON(&b, t.doc.Content[0]); err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b.Bytes(), "", "\t"); err != nil {
			return nil, err
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(4)
	if err := enc.Encode(&t.doc); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func writeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			b.Write(k)
			b.WriteByte(':')
			if err := writeJSON(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			b.WriteString("null")
		case "!!int", "!!float", "!!bool":
			var v any
			if err := n.Decode(&v); err != nil {
				return err
			}
			j, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b.Write(j)
		default:
			j, _ := json.Marshal(n.Value)
			b.Write(j)
		}
	default:
		return errors.New("YAML aliases are not supported in a sops file")
	}
	return nil
}
