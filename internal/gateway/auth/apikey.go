package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// APIKeyPrefix starts every Nimbus API key, so leaked keys are easy to find
// with secret scanners.
const APIKeyPrefix = "nmb_"

// idLen is the length of the hex key ID that follows the prefix.
const idLen = 16

// APIKeyHeader is where clients send API keys.
const APIKeyHeader = "X-Api-Key"

// KeyRecord is what the platform stores about an API key. The key itself is
// never stored: Hash is the hex SHA-256 of the whole plain key.
type KeyRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Revoked bool      `json:"revoked,omitempty"`
	Plan    string    `json:"plan,omitempty"`
}

// NewAPIKey mints a key: "nmb_" + 16 hex characters of ID + "_" + 43
// characters of secret (256 random bits). Show plain to the user once;
// store rec (after setting Name and Plan).
func NewAPIKey() (plain string, rec KeyRecord) {
	var id [idLen / 2]byte
	var secret [32]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(secret[:])
	rec.ID = hex.EncodeToString(id[:])
	plain = APIKeyPrefix + rec.ID + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	rec.Hash = hashKey(plain)
	rec.Created = time.Now().UTC()
	return plain, rec
}

func hashKey(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// APIKeyID returns the record ID embedded in a plain key, or false if the
// key is not in Nimbus format.
func APIKeyID(plain string) (string, bool) {
	rest, ok := strings.CutPrefix(plain, APIKeyPrefix)
	if !ok || len(rest) < idLen+2 || rest[idLen] != '_' {
		return "", false
	}
	id := rest[:idLen]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return id, true
}

// APIKeyFromRequest returns the key in the X-Api-Key header, or a bearer
// token that looks like a Nimbus key.
func APIKeyFromRequest(r *http.Request) (string, bool) {
	if k := strings.TrimSpace(r.Header.Get(APIKeyHeader)); k != "" {
		return k, true
	}
	if tok, ok := BearerToken(r); ok && strings.HasPrefix(tok, APIKeyPrefix) {
		return tok, true
	}
	return "", false
}

// VerifyAPIKey checks plain against the record lookup returns for its ID.
// The hash comparison is constant-time. Unknown, malformed, tampered and
// revoked keys all wrap ErrInvalidCredentials; an empty key wraps
// ErrMissingCredentials.
func VerifyAPIKey(plain string, lookup func(id string) (KeyRecord, bool)) (KeyRecord, error) {
	if plain == "" {
		return KeyRecord{}, fmt.Errorf("api key: %w", ErrMissingCredentials)
	}
	id, ok := APIKeyID(plain)
	if !ok {
		return KeyRecord{}, invalid("api key: not in nmb_ format")
	}
	rec, ok := lookup(id)
	if !ok {
		return KeyRecord{}, invalid("api key %s: unknown id", id)
	}
	want, err := hex.DecodeString(rec.Hash)
	if err != nil || len(want) != sha256.Size {
		return KeyRecord{}, invalid("api key %s: stored hash is corrupt", id)
	}
	got := sha256.Sum256([]byte(plain))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return KeyRecord{}, invalid("api key %s: secret does not match", id)
	}
	if rec.Revoked {
		return KeyRecord{}, invalid("api key %s: revoked", id)
	}
	return rec, nil
}
