package heartbeatd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// idsString asks the daemon to write user ids as JSON strings.
var idsString = url.Values{"ids": {"string"}}

func userPath(id uint64) string { return "/v1/users/" + strconv.FormatUint(id, 10) }

// Health is GET /v1/health (scope read).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Members is GET /v1/members (scope read): every member this node knows, itself included,
// sorted by name.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var w struct {
		Members []Member `json:"members"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/members", nil, nil, &w); err != nil {
		return nil, err
	}
	return w.Members, nil
}

// Member is GET /v1/members/{name} (scope read). An unknown name is an *APIError with
// Status 404 and Code "unknown_member".
func (c *Client) Member(ctx context.Context, name string) (*Member, error) {
	var m Member
	if err := c.do(ctx, http.MethodGet, "/v1/members/"+url.PathEscape(name), nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Keys is GET /v1/keys (scope admin): the cluster keyring.
func (c *Client) Keys(ctx context.Context) (*Keyring, error) {
	var k Keyring
	if err := c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Heartbeat is POST /v1/users/{id}/heartbeat (scope write): the user is online for
// presence.timeout from now.
func (c *Client) Heartbeat(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodPost, userPath(id)+"/heartbeat", nil, nil, nil)
}

// Logout is DELETE /v1/users/{id} (scope write): the user is offline at once and keeps its
// last-seen time.
func (c *Client) Logout(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodDelete, userPath(id), nil, nil, nil)
}

// Status is GET /v1/users/{id} (scope read).
func (c *Client) Status(ctx context.Context, id uint64) (*UserStatus, error) {
	var s UserStatus
	if err := c.do(ctx, http.MethodGet, userPath(id), idsString, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Counts is GET /v1/users (scope read): users online and tracked.
func (c *Client) Counts(ctx context.Context) (*Counts, error) {
	var n Counts
	if err := c.do(ctx, http.MethodGet, "/v1/users", nil, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// History is GET /v1/users/history (scope read): the online count over the last
// presence.history.points samples, oldest first.
func (c *Client) History(ctx context.Context) (*History, error) {
	var h History
	if err := c.do(ctx, http.MethodGet, "/v1/users/history", nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// HeartbeatMany is POST /v1/users/heartbeat (scope write) for any number of ids,
// duplicates allowed, sent in batches of at most MaxBatch ids one after the other. It
// returns how many heartbeats the daemon accepted; on an error, those of the batches sent
// before it (a batch with an error changes nothing). No ids: nothing is sent.
func (c *Client) HeartbeatMany(ctx context.Context, ids []uint64) (int, error) {
	accepted := 0
	err := c.eachBatch(ctx, ids, func(chunk []uint64) error {
		var w struct {
			Accepted int `json:"accepted"`
		}
		if err := c.do(ctx, http.MethodPost, "/v1/users/heartbeat", nil, appendUsersBody(nil, chunk), &w); err != nil {
			return err
		}
		accepted += w.Accepted
		return nil
	})
	return accepted, err
}

// StatusMany is POST /v1/users/status (scope read) for any number of ids, in batches of at
// most MaxBatch; the answer has one entry per id, in request order.
func (c *Client) StatusMany(ctx context.Context, ids []uint64) ([]UserStatus, error) {
	out := make([]UserStatus, 0, len(ids))
	err := c.eachBatch(ctx, ids, func(chunk []uint64) error {
		var w struct {
			Users []UserStatus `json:"users"`
		}
		if err := c.do(ctx, http.MethodPost, "/v1/users/status", idsString, appendUsersBody(nil, chunk), &w); err != nil {
			return err
		}
		if len(w.Users) != len(chunk) {
			return errors.New("heartbeatd: POST /v1/users/status: " + strconv.Itoa(len(w.Users)) +
				" answers for " + strconv.Itoa(len(chunk)) + " ids")
		}
		out = append(out, w.Users...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// formatBits asks POST /v1/users/status for one bit per user.
var formatBits = url.Values{"format": {"bits"}}

// ErrBadAnswer is wrapped by the error of an answer that is not what the API describes
// (errors.Is(err, ErrBadAnswer)): for Online, a body that is not application/octet-stream,
// not ceil(n/8) bytes, an X-Heartbeatd-Count other than the number of ids sent, or padding
// bits set. Such an answer is refused whole, never read as "offline".
var ErrBadAnswer = errors.New("malformed answer")

// Online is POST /v1/users/status?format=bits (scope read) for any number of ids, in
// batches of at most MaxBatch: one bool per id, in request order, true for a user online.
// The daemon answers one bit per user (n/8 bytes instead of about 55 a user). An unknown
// user is false, as one gone offline: StatusMany tells them apart and has LastSeenMs.
func (c *Client) Online(ctx context.Context, ids []uint64) ([]bool, error) {
	out := make([]bool, 0, len(ids))
	err := c.eachBatch(ctx, ids, func(chunk []uint64) error {
		resp, data, err := c.exchange(ctx, http.MethodPost, "/v1/users/status", formatBits,
			appendUsersBody(nil, chunk), "application/octet-stream")
		if err != nil {
			return err
		}
		out, err = appendStatusBits(out, resp.StatusCode, resp.Header, data, len(chunk))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendStatusBits appends to out the answer of POST /v1/users/status?format=bits for
// count ids: bit i%8 of byte i/8, least significant first, is the i-th id. It appends
// nothing and returns an error wrapping ErrBadAnswer unless the answer is exactly that:
// status 200, Content-Type application/octet-stream, one X-Heartbeatd-Count equal to count,
// ceil(count/8) bytes and the unused high bits of the last byte 0.
func appendStatusBits(out []bool, status int, h http.Header, body []byte, count int) ([]bool, error) {
	bad := func(format string, args ...interface{}) ([]bool, error) {
		return out, fmt.Errorf("heartbeatd: POST /v1/users/status?format=bits: %w: %s", ErrBadAnswer,
			fmt.Sprintf(format, args...))
	}
	if status != http.StatusOK {
		return bad("status %d, expected 200", status)
	}
	ctype := h.Get("Content-Type")
	if media, _, _ := strings.Cut(ctype, ";"); !strings.EqualFold(strings.TrimSpace(media), "application/octet-stream") {
		return bad("Content-Type %q, expected application/octet-stream (a daemon without format=bits?)", ctype)
	}
	counted := h.Values("X-Heartbeatd-Count")
	if n, err := strconv.ParseUint(strings.Join(counted, ","), 10, 32); len(counted) != 1 || err != nil || n != uint64(count) {
		return bad("X-Heartbeatd-Count %q, expected %d (the number of ids sent)", counted, count)
	}
	if want := (count + 7) / 8; len(body) != want {
		return bad("%d bytes for %d ids, expected %d", len(body), count, want)
	}
	if rest := count % 8; rest != 0 && body[len(body)-1]>>rest != 0 {
		return bad("padding bits set in the last byte (0x%02x for %d ids)", body[len(body)-1], rest)
	}
	for i := 0; i < count; i++ {
		out = append(out, body[i/8]>>(i%8)&1 == 1)
	}
	return out, nil
}

// MaxBatch is the largest batch this client sends: Options.MaxBatch, else
// presence.max_batch from GET /v1/health, read once (DefaultMaxBatch if the daemon does not
// report it, or if this client's token may not read health).
func (c *Client) MaxBatch(ctx context.Context) (int, error) {
	if c.fixedBatch > 0 {
		return c.fixedBatch, nil
	}
	c.batchMu.Lock()
	n := c.maxBatch
	c.batchMu.Unlock()
	if n > 0 {
		return n, nil
	}
	h, err := c.Health(ctx)
	n = DefaultMaxBatch
	if err != nil {
		var ae *APIError
		// A write-only token (a gateway's) may not read health: use the default, and learn
		// the real limit from a 413 if it is smaller.
		if !errors.As(err, &ae) || (ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden) {
			return 0, err
		}
	} else if h.Presence.MaxBatch > 0 {
		n = h.Presence.MaxBatch
	}
	c.batchMu.Lock()
	if c.maxBatch == 0 {
		c.maxBatch = n
	}
	n = c.maxBatch
	c.batchMu.Unlock()
	return n, nil
}

var batchLimitRe = regexp.MustCompile(`more than (\d+) ids`)

// shrinkBatch lowers the cached batch size after a 413 batch_too_large for a batch of
// `sent` ids (the daemon restarted with a smaller presence.max_batch): to the limit the
// message names, else half. It reports whether a smaller size is possible.
func (c *Client) shrinkBatch(sent int, ae *APIError) bool {
	if c.fixedBatch > 0 || sent <= 1 {
		return false
	}
	n := sent / 2
	if m := batchLimitRe.FindStringSubmatch(ae.Message); m != nil {
		if v, err := strconv.Atoi(m[1]); err == nil && v > 0 && v < sent {
			n = v
		}
	}
	c.batchMu.Lock()
	c.maxBatch = n
	c.batchMu.Unlock()
	return true
}

// eachBatch calls send with consecutive chunks of ids of at most MaxBatch ids.
func (c *Client) eachBatch(ctx context.Context, ids []uint64, send func([]uint64) error) error {
	for len(ids) > 0 {
		size, err := c.MaxBatch(ctx)
		if err != nil {
			return err
		}
		if size > len(ids) {
			size = len(ids)
		}
		err = send(ids[:size])
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusRequestEntityTooLarge && ae.Code == "batch_too_large" &&
			c.shrinkBatch(size, ae) {
			continue // the same ids again, in smaller batches
		}
		if err != nil {
			return err
		}
		ids = ids[size:]
	}
	return nil
}
