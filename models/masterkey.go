package models

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MasterKeySize is the length of the key-encrypting key in bytes.
const MasterKeySize = 32

// LoadMasterKey reads the key-encrypting key from path. The file holds the 32
// bytes raw, as 64 hex digits, or as base64; surrounding white space is ignored.
func LoadMasterKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: unable to read %s: %w", path, err)
	}
	if len(raw) == MasterKeySize {
		return raw, nil
	}
	text := strings.TrimSpace(string(raw))
	if b, err := hex.DecodeString(text); err == nil && len(b) == MasterKeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == MasterKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("master key: %s must hold exactly 32 bytes (raw, 64 hex digits or base64)", path)
}

// CreateMasterKey writes a new random key to path as hex with mode 0600. It
// refuses to overwrite an existing file.
func CreateMasterKey(path string) ([]byte, error) {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("master key: %s already exists", path)
		}
		return nil, fmt.Errorf("master key: unable to create %s: %w", path, err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("master key: unable to write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return key, nil
}

// MasterKeyID names a key without revealing it: the first 16 hex digits of a
// SHA-256 over a fixed label and the key. It is stored beside ciphertexts so
// keys can rotate.
func MasterKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("payfuse master key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil))[:16]
}
