package sopsfile

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// decryptValue decrypts one ENC[AES256_GCM,...] value with the data key
// and the value's path as additional data (aes.Cipher.Decrypt). It returns
// the value as text and the bytes the MAC covers for it (sops.ToBytes of
// the typed value). An empty value is left empty, as sops leaves it.
func decryptValue(ciphertext string, key []byte, additionalData string) (string, []byte, error) {
	v, _, mac, err := decryptTyped(ciphertext, key, additionalData)
	return v, mac, err
}

// decryptTyped is decryptValue, with the value's sops type ("str", "int",
// "float", "bool", "bytes", "time", "comment").
func decryptTyped(ciphertext string, key []byte, additionalData string) (value, typ string, mac []byte, err error) {
	value, mac, err = decryptOne(ciphertext, key, additionalData)
	if m := encValue.FindStringSubmatch(ciphertext); m != nil {
		typ = m[4]
	}
	return value, typ, mac, err
}

func decryptOne(ciphertext string, key []byte, additionalData string) (string, []byte, error) {
	if ciphertext == "" {
		return "", nil, nil
	}
	m := encValue.FindStringSubmatch(ciphertext)
	if m == nil {
		return "", nil, errors.New("not a sops encrypted value")
	}
	var parts [3][]byte
	for i := range parts {
		b, err := base64.StdEncoding.DecodeString(m[i+1])
		if err != nil {
			return "", nil, fmt.Errorf("not a sops encrypted value: %w", err)
		}
		parts[i] = b
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", nil, fmt.Errorf("data key: %w", err)
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(parts[1]))
	if err != nil {
		return "", nil, fmt.Errorf("data key: %w", err)
	}
	plain, err := gcm.Open(nil, parts[1], append(parts[0], parts[2]...), []byte(additionalData))
	if err != nil {
		return "", nil, errors.New("the value does not decrypt with the file's data key")
	}
	s := string(plain)
	switch m[4] {
	case "str", "bytes", "time", "comment":
		return s, plain, nil
	case "int":
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", nil, errors.New("an int value that is not a number")
		}
		return s, []byte(strconv.Itoa(n)), nil
	case "float":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", nil, errors.New("a float value that is not a number")
		}
		return s, []byte(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case "bool":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return "", nil, errors.New("a bool value that is not a boolean")
		}
		if b {
			return s, []byte("True"), nil
		}
		return s, []byte("False"), nil
	}
	return "", nil, fmt.Errorf("unknown sops value type %q", m[4])
}
