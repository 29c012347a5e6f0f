package heartbeatd

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// wireID is a user id as the daemon writes it: a JSON string ("42", with ids=string) or a
// JSON number (42), both canonical decimal 0..18446744073709551615.
type wireID uint64

func (id *wireID) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("heartbeatd: %s is not a user id (an unsigned 64-bit integer)", b)
	}
	*id = wireID(v)
	return nil
}

// appendUsersBody appends {"users":["1","2",...]}: ids as strings, which the daemon reads
// exactly like numbers.
func appendUsersBody(buf []byte, ids []uint64) []byte {
	buf = append(buf, `{"users":[`...)
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = strconv.AppendUint(buf, id, 10)
		buf = append(buf, '"')
	}
	return append(buf, "]}"...)
}

// UserStatus is one user's presence (GET /v1/users/{id}, POST /v1/users/status).
type UserStatus struct {
	User   uint64 `json:"user,string"`
	Online bool   `json:"online"`
	// LastSeenMs is the wall-clock Unix time in ms of the last heartbeat; nil if the user
	// was never seen or has been forgotten (presence.forget_after).
	LastSeenMs *int64 `json:"last_seen_ms"`
}

func (u *UserStatus) UnmarshalJSON(b []byte) error {
	var w struct {
		User       *wireID `json:"user"`
		Online     bool    `json:"online"`
		LastSeenMs *int64  `json:"last_seen_ms"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.User == nil {
		return fmt.Errorf("heartbeatd: a user status without \"user\": %s", b)
	}
	*u = UserStatus{User: uint64(*w.User), Online: w.Online, LastSeenMs: w.LastSeenMs}
	return nil
}

// Member is one member of the cluster as this node sees it (GET /v1/members).
type Member struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "alive", "suspect", "dead" or "left".
	State       string `json:"state"`
	Incarnation uint64 `json:"incarnation"`
	// LastSeenMs is when this node last received a datagram from it (Unix ms); nil if
	// only heard of through others.
	LastSeenMs *int64 `json:"last_seen_ms"`
	Self       bool   `json:"self"`
	// Tags are node.tags as the member last announced them ({"role": "db"}); empty (nil
	// from a daemon before tags) for none.
	Tags map[string]string `json:"tags"`
}

// Member states.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Health is GET /v1/health.
type Health struct {
	// Status is "ok", or "degraded" while snapshots fail.
	Status      string       `json:"status"`
	Node        string       `json:"node"`
	Version     string       `json:"version"`
	UptimeMs    int64        `json:"uptime_ms"`
	Warnings    []string     `json:"warnings"`
	Persistence Persistence  `json:"persistence"`
	Presence    PresenceInfo `json:"presence"`
}

// Persistence is the state of node.data_dir's snapshots (docs/PERSISTENCE.md).
type Persistence struct {
	DataDir                string  `json:"data_dir"`
	LastSnapshotMs         *int64  `json:"last_snapshot_ms"`
	LastSnapshotUsers      uint64  `json:"last_snapshot_users"`
	LastSnapshotBytes      uint64  `json:"last_snapshot_bytes"`
	LastSnapshotDurationMs int64   `json:"last_snapshot_duration_ms"`
	DiskBytes              uint64  `json:"disk_bytes"`
	Failures               uint64  `json:"failures"`
	LastError              *string `json:"last_error"`
}

// PresenceInfo describes the presence store.
type PresenceInfo struct {
	Backend  string   `json:"backend"` // "memory", "redis" or "dynamodb"
	Status   string   `json:"status"`  // "ok" or "unavailable"
	Problem  *string  `json:"problem"`
	Nodes    []string `json:"nodes"`
	MaxBatch int      `json:"max_batch"` // presence.max_batch; 0 from a daemon that does not say
}

// Keyring is GET /v1/keys: the cluster keys in force and who uses them.
type Keyring struct {
	Keys             []Key `json:"keys"`
	PlaintextMembers int   `json:"plaintext_members"`
	UnknownMembers   int   `json:"unknown_members"`
	SealOutgoing     bool  `json:"seal_outgoing"`
	RequireSealed    bool  `json:"require_sealed"`
}

// Key is one key of the ring, by fingerprint.
type Key struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
	Members     int    `json:"members"`
}

// Counts is GET /v1/users: users online, and tracked (online or not yet forgotten).
type Counts struct {
	Online  uint64 `json:"online"`
	Tracked uint64 `json:"tracked"`
}

// History is GET /v1/users/history: the online and tracked counts sampled every
// IntervalMs, oldest first.
type History struct {
	IntervalMs int64          `json:"interval_ms"`
	Points     []HistoryPoint `json:"points"`
}

// HistoryPoint is one sample of the counts.
type HistoryPoint struct {
	TimeMs  int64  `json:"time_ms"`
	Online  uint64 `json:"online"`
	Tracked uint64 `json:"tracked"`
}
