package sopsfile

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// metadata is the "sops" section of an encrypted file, with the fields
// decryption needs (stores/stores.go's metadata).
type metadata struct {
	ShamirThreshold         int        `json:"shamir_threshold"`
	KeyGroups               []rawGroup `json:"key_groups"`
	LastModified            string     `json:"lastmodified"`
	MAC                     string     `json:"mac"`
	UnencryptedSuffix       string     `json:"unencrypted_suffix"`
	EncryptedSuffix         string     `json:"encrypted_suffix"`
	UnencryptedRegex        string     `json:"unencrypted_regex"`
	EncryptedRegex          string     `json:"encrypted_regex"`
	UnencryptedCommentRegex string     `json:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string     `json:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool       `json:"mac_only_encrypted"`
	Version                 string     `json:"version"`
	rawGroup                           // the keys of a file with one group
}

// rawGroup is a key group as written: age and pgp keys, and the other
// sources by name only.
type rawGroup struct {
	Age     []ageKey          `json:"age"`
	PGP     []pgpKey          `json:"pgp"`
	KMS     []json.RawMessage `json:"kms"`
	GCPKMS  []json.RawMessage `json:"gcp_kms"`
	AzureKV []json.RawMessage `json:"azure_kv"`
	Vault   []json.RawMessage `json:"hc_vault"`
	HCKMS   []json.RawMessage `json:"hckms"`
}

type ageKey struct {
	Recipient string `json:"recipient"`
	Enc       string `json:"enc"`
}

type pgpKey struct {
	Fingerprint string `json:"fp"`
	Enc         string `json:"enc"`
}

// keyGroup is a group's keys fleetd can use, and the names of the
// sources of the others.
type keyGroup struct {
	Age   []ageKey
	PGP   []pgpKey
	Other []string
}

func (g rawGroup) group() keyGroup {
	out := keyGroup{Age: g.Age, PGP: g.PGP}
	for name, keys := range map[string][]json.RawMessage{"AWS KMS": g.KMS, "GCP KMS": g.GCPKMS, "Azure Key Vault": g.AzureKV, "Vault": g.Vault, "Huawei KMS": g.HCKMS} {
		if len(keys) > 0 {
			out.Other = append(out.Other, name)
		}
	}
	sort.Strings(out.Other)
	return out
}

// groups returns the file's key groups: key_groups, or the keys at the
// top of the section.
func (m *metadata) groups() []keyGroup {
	var out []keyGroup
	for _, g := range m.KeyGroups {
		out = append(out, g.group())
	}
	if len(out) == 0 {
		if g := m.rawGroup.group(); len(g.Age)+len(g.PGP)+len(g.Other) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// check refuses what this package does not implement rather than compute
// a wrong MAC.
func (m *metadata) check() error {
	if m.MAC == "" || m.LastModified == "" {
		return fmt.Errorf("sops metadata without mac or lastmodified")
	}
	if m.UnencryptedCommentRegex != "" || m.EncryptedCommentRegex != "" {
		return fmt.Errorf("sops *_comment_regex options are not supported")
	}
	return nil
}

// decodeMetadata decodes the "sops" section from a generic JSON value.
func decodeMetadata(v interface{}) (*metadata, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	var md metadata
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	return &md, md.check()
}

// unflatten rebuilds the "sops" section from a dotenv file's sops_ keys
// (stores/flatten.go: "__map_<key>" and "__list_<n>" join the path).
func unflatten(flat map[string]string) (interface{}, error) {
	root := map[string]interface{}{}
	for key, value := range flat {
		if err := place(root, tokens(key), value); err != nil {
			return nil, fmt.Errorf("sops metadata %s: %w", key, err)
		}
	}
	return lists(root, ""), nil
}

// tokens splits a flattened key into map keys and list indexes (the
// latter prefixed with "#").
func tokens(key string) []string {
	var out []string
	prefix := ""
	for {
		m, l := strings.Index(key, "__map_"), strings.Index(key, "__list_")
		at, sep := -1, ""
		switch {
		case m >= 0 && (l < 0 || m < l):
			at, sep = m, "__map_"
		case l >= 0:
			at, sep = l, "__list_"
		}
		if at < 0 {
			return append(out, prefix+key)
		}
		out = append(out, prefix+key[:at])
		key = key[at+len(sep):]
		prefix = ""
		if sep == "__list_" {
			prefix = "#"
		}
	}
}

func place(root map[string]interface{}, path []string, value string) error {
	cur := root
	for i, t := range path {
		if i == len(path)-1 {
			if _, dup := cur[t]; dup {
				return fmt.Errorf("duplicate value")
			}
			cur[t] = value
			return nil
		}
		next, ok := cur[t].(map[string]interface{})
		if !ok {
			if _, exists := cur[t]; exists {
				return fmt.Errorf("type mismatch")
			}
			next = map[string]interface{}{}
			cur[t] = next
		}
		cur = next
	}
	return nil
}

// lists turns maps whose keys are all "#<n>" into lists, in index order,
// and the two values that are not strings into their types.
func lists(v interface{}, key string) interface{} {
	m, ok := v.(map[string]interface{})
	if !ok {
		s := v.(string)
		switch key {
		case "mac_only_encrypted":
			return s == "true"
		case "shamir_threshold":
			n, _ := strconv.Atoi(s)
			return n
		}
		return s
	}
	indexed := len(m) > 0
	for k := range m {
		if !strings.HasPrefix(k, "#") {
			indexed = false
		}
	}
	if !indexed {
		for k, e := range m {
			m[k] = lists(e, k)
		}
		return m
	}
	type item struct {
		i int
		v interface{}
	}
	var items []item
	for k, e := range m {
		n, _ := strconv.Atoi(k[1:])
		items = append(items, item{n, lists(e, "")})
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]interface{}, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}
