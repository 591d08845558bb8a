package sopsfile

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ErrMAC is returned when a file's MAC does not match its values: it was
// changed after sops encrypted it (or by something other than sops).
var ErrMAC = errors.New("MAC mismatch: the file was changed without sops")

// Plain is a decrypted file.
type Plain struct {
	// Data is the file as `sops -d` prints it.
	Data []byte
	// Digest stands for Data in a spec: "hmac-sha256:<hex>", keyed with
	// a key derived from the file's data key (see digest).
	Digest  string
	dataKey []byte
}

// DigestOf digests a part of the plaintext (one value of an env file)
// with the file's key, as Digest digests the whole.
func (p Plain) DigestOf(b []byte) string { return digest(p.dataKey, b) }

// store is the file format sops chose for a file, by its extension, as
// sops chooses it (cmd/sops/formats).
type store int

const (
	storeBinary store = iota // JSON: {"data": ..., "sops": ...}
	storeDotenv
	storeYAML
	storeJSON
	storeINI
)

func storeOf(name string) store {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".env":
		return storeDotenv
	case ".yaml", ".yml":
		return storeYAML
	case ".json":
		return storeJSON
	case ".ini":
		return storeINI
	}
	return storeBinary
}

func (s store) String() string {
	return [...]string{"binary", "dotenv", "yaml", "json", "ini"}[s]
}

// Encrypted reports whether data, a file named name, is a file sops
// encrypted: it carries sops metadata where its format keeps it (a sops_mac
// line in dotenv, a top-level "sops" key in JSON and YAML, a [sops] section
// in INI).
func Encrypted(name string, data []byte) bool {
	if !bytes.Contains(data, []byte("sops")) {
		return false // every format sops writes names it: no parse needed
	}
	switch storeOf(name) {
	case storeDotenv:
		for _, line := range bytes.Split(data, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("sops_mac=")) {
				return true
			}
		}
		return false
	case storeINI:
		return bytes.Contains(data, []byte("\n[sops]")) || bytes.HasPrefix(data, []byte("[sops]"))
	case storeYAML:
		return yamlHasSops(data)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	var md struct {
		MAC string `json:"mac"`
	}
	return json.Unmarshal(top["sops"], &md) == nil && md.MAC != ""
}

// Decrypt decrypts a file sops encrypted with the host's keys and checks
// its MAC. Errors never hold a value of the file.
func Decrypt(name string, data []byte, keys Keys) (Plain, error) {
	var t tree
	var err error
	switch st := storeOf(name); st {
	case storeDotenv:
		t, err = loadDotenv(data)
	case storeBinary:
		t, err = loadBinary(data)
	case storeYAML, storeJSON:
		return decryptYAML(data, st == storeJSON, keys)
	default:
		return Plain{}, fmt.Errorf("sops %s files are not supported: encrypt it whole (sops -e --input-type binary --output-type json, into a file without a %s extension)", st, filepath.Ext(name))
	}
	if err != nil {
		return Plain{}, err
	}
	key, err := keys.dataKey(t.md)
	if err != nil {
		return Plain{}, err
	}
	if err := t.decrypt(key); err != nil {
		return Plain{}, err
	}
	plain := t.emit()
	return Plain{Data: plain, Digest: digest(key, plain), dataKey: key}, nil
}

func decryptYAML(data []byte, isJSON bool, keys Keys) (Plain, error) {
	t, err := loadYAMLTree(data, isJSON)
	if err != nil {
		return Plain{}, err
	}
	key, err := keys.dataKey(t.md)
	if err != nil {
		return Plain{}, err
	}
	if err := t.decrypt(key); err != nil {
		return Plain{}, err
	}
	plain, err := t.emit()
	if err != nil {
		return Plain{}, fmt.Errorf("emit the plaintext: %w", err)
	}
	return Plain{Data: plain, Digest: digest(key, plain), dataKey: key}, nil
}

// digest is an HMAC-SHA256 of the plaintext keyed with a key derived from
// the data key. Unkeyed, a digest in a label would let anyone who reads
// labels test guesses of a short secret; keyed with the data key, only a
// holder of a private key can, and a holder can decrypt the file anyway.
// Every host that decrypts the file computes the same digest (plans agree
// between hosts and with CI); a `sops rotate` (a new data key) changes it,
// once.
func digest(dataKey, plain []byte) string {
	kdf := hmac.New(sha256.New, dataKey)
	kdf.Write([]byte("fleetd spec digest v1"))
	mac := hmac.New(sha256.New, kdf.Sum(nil))
	mac.Write(plain)
	return "hmac-sha256:" + hex.EncodeToString(mac.Sum(nil))
}

// tree is a flat sops tree: the dotenv store's lines, or the binary
// store's one "data" value.
type tree struct {
	store store
	items []item
	md    *metadata
}

// item is a key and value, or a comment (dotenv).
type item struct {
	key     string
	value   string
	comment bool
}

func loadDotenv(data []byte) (tree, error) {
	t := tree{store: storeDotenv}
	flat := map[string]string{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		switch {
		case len(line) == 0:
		case line[0] == '#':
			t.items = append(t.items, item{value: string(line[1:]), comment: true})
		default:
			key, value, ok := strings.Cut(string(line), "=")
			if !ok {
				return tree{}, errors.New("invalid dotenv line (no =)")
			}
			value = strings.ReplaceAll(value, `\n`, "\n")
			if rest, ok := strings.CutPrefix(key, "sops_"); ok {
				flat[rest] = value
				continue
			}
			t.items = append(t.items, item{key: key, value: value})
		}
	}
	raw, err := unflatten(flat)
	if err != nil {
		return tree{}, err
	}
	if t.md, err = decodeMetadata(raw); err != nil {
		return tree{}, err
	}
	return t, nil
}

func loadBinary(data []byte) (tree, error) {
	var f struct {
		Data *string        `json:"data"`
		Sops map[string]any `json:"sops"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return tree{}, fmt.Errorf("not a sops binary file: %w", err)
	}
	if f.Data == nil || f.Sops == nil {
		return tree{}, errors.New(`not a sops binary file: no "data" or "sops" key`)
	}
	md, err := decodeMetadata(f.Sops)
	if err != nil {
		return tree{}, err
	}
	return tree{store: storeBinary, items: []item{{key: "data", value: *f.Data}}, md: md}, nil
}

// macOnlyEncryptedInit starts the MAC of a file with mac_only_encrypted
// (sops.MACOnlyEncryptedInitialization).
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// decrypt decrypts the values in place and checks the MAC, as
// sops.Tree.Decrypt and cmd/sops/common.DecryptTree do.
func (t *tree) decrypt(key []byte) error {
	h := sha512.New()
	if t.md.MACOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	for i, it := range t.items {
		if it.comment {
			// A comment is encrypted under the path of its branch (the
			// top, ":"); one that does not decrypt was left clear.
			if v, _, err := decryptValue(it.value, key, ":"); err == nil {
				t.items[i].value = v
			}
			continue
		}
		encrypted := t.md.encryptsPath([]string{it.key})
		if encrypted {
			v, mac, err := decryptValue(it.value, key, it.key+":")
			if err != nil {
				return fmt.Errorf("value %s: %w", it.key, err)
			}
			t.items[i].value = v
			h.Write(mac)
		} else if !t.md.MACOnlyEncrypted {
			h.Write([]byte(it.value))
		}
	}
	return checkMAC(t.md, key, fmt.Sprintf("%X", h.Sum(nil)))
}

// checkMAC compares the MAC computed over the values with the file's,
// which is encrypted with the lastmodified time as additional data.
func checkMAC(md *metadata, key []byte, want string) error {
	lm, err := time.Parse(time.RFC3339, md.LastModified)
	if err != nil {
		return fmt.Errorf("sops metadata lastmodified: %w", err)
	}
	got, _, err := decryptValue(md.MAC, key, lm.Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("%w (the MAC does not decrypt)", ErrMAC)
	}
	if !hmac.Equal([]byte(got), []byte(want)) {
		return ErrMAC
	}
	return nil
}

// emit writes the tree as `sops -d` prints it.
func (t *tree) emit() []byte {
	if t.store == storeBinary {
		return []byte(t.items[0].value)
	}
	var b bytes.Buffer
	for _, it := range t.items {
		if it.comment {
			b.WriteString("#" + it.value + "\n")
			continue
		}
		b.WriteString(it.key + "=" + strings.ReplaceAll(it.value, "\n", `\n`) + "\n")
	}
	return b.Bytes()
}
