// Package auth holds integrations (client id, API key pairs), their keys and scopes,
// and turns a presented key into the Principal it stands for.
//
// Keys are shown once and stored only as a hash: a leaked database does not leak
// working keys.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// KeyPrefix marks callbridge keys, so a secret scanner (or a person) recognises one.
const KeyPrefix = "cb_"

// keyBytes is the key's entropy: 256 bits, beyond any guessing.
const keyBytes = 32

// prefixLen is how much of a key is kept in clear for listing: "cb_" and 5 random
// characters (30 bits) tell keys apart in a list and say nothing useful to a thief.
const prefixLen = 8

// GenerateKey returns a new random key, its hash for the store and its listing prefix.
func GenerateKey() (key string, hash []byte, prefix string, err error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, "", fmt.Errorf("auth: generate key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, Hash(key), key[:prefixLen], nil
}

// Hash is the stored form of a key.
//
// A plain SHA-256, not a password hash (bcrypt, argon2): password hashes are slow to
// make guessing low-entropy secrets expensive, but a key is 256 random bits, so no
// guessing is possible however fast the hash; a slow hash would only make every API
// request slow. Being deterministic, it also lets the store find a key by an index
// lookup on the hash.
func Hash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}
