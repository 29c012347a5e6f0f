package heartbeatd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// MaxMemberPage is the largest MemberPageRequest.Limit the daemon takes.
const MaxMemberPage = 10000

// ErrBadFilter is wrapped by every error about a member filter or page request refused
// before anything is sent (errors.Is(err, ErrBadFilter)); the message names the parameter.
var ErrBadFilter = errors.New("bad member filter")

// MemberFilter selects members of GET /v1/members; a member is listed when it matches
// every field set. The zero value matches every member.
type MemberFilter struct {
	// State: any of these states (StateAlive, StateSuspect, StateDead, StateLeft); an
	// element may also list several with commas ("alive,suspect").
	State []string
	// Name: the whole name matches this pattern; * matches any run of characters, ?
	// exactly one. "" for any name.
	Name string
	// Tag: "key:value" (exactly this value: everything after the first ':') or "key" (any
	// value). Every one must match.
	Tag []string
}

// MemberPageRequest is one request of MembersPage: a filter, a page size and the cursor
// of the previous page, and an ETag for a conditional request.
type MemberPageRequest struct {
	MemberFilter
	// Limit: at most this many members, 1 to MaxMemberPage; 0 for every match in one
	// answer (then NextCursor is always "").
	Limit int
	// Cursor: the NextCursor of the previous page (same filter); "" for the first page.
	Cursor string
	// IfNoneMatch: an ETag you hold from an earlier answer to the same request. If the
	// answer would be the same, the daemon sends a body-less 304 and MembersPage returns a
	// page with NotModified set.
	IfNoneMatch string
}

// MemberPage is one answer of GET /v1/members.
type MemberPage struct {
	Members []Member
	// NextCursor: pass it as Cursor, with the same filter, for the next page; "" on the last
	// page and without a Limit.
	NextCursor string
	// ETag: the answer's entity tag, to pass back as IfNoneMatch.
	ETag string
	// NotModified: the daemon answered 304 to IfNoneMatch; Members is empty and NextCursor
	// "": keep what you had.
	NotModified bool
}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9._*?-]{1,256}$`)
	tagKey      = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

func badFilter(format string, args ...interface{}) error {
	return fmt.Errorf("heartbeatd: %w: %s", ErrBadFilter, fmt.Sprintf(format, args...))
}

// query adds the filter's parameters to q, or says what the daemon would refuse.
func (f MemberFilter) query(q url.Values) error {
	for _, s := range f.State {
		for _, one := range strings.Split(s, ",") {
			switch one {
			case StateAlive, StateSuspect, StateDead, StateLeft:
			default:
				return badFilter("state: unknown state %q (expected alive, suspect, dead or left)", one)
			}
		}
		q.Add("state", s)
	}
	if f.Name != "" {
		if !namePattern.MatchString(f.Name) {
			return badFilter("name: bad pattern %q (expected 1 to 256 letters, digits, '.', '-', '_' and the wildcards '*' and '?')", f.Name)
		}
		q.Set("name", f.Name)
	}
	for _, t := range f.Tag {
		key, value, hasValue := strings.Cut(t, ":")
		if !tagKey.MatchString(key) {
			return badFilter("tag: bad key %q (expected key:value or key, the key 1 to 64 letters, digits, '.', '-' or '_')", key)
		}
		if hasValue && !printableASCII(value, 128) {
			return badFilter("tag: bad value for %s (at most 128 printable ASCII characters)", key)
		}
		q.Add("tag", t)
	}
	return nil
}

func printableASCII(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Query is the query string (no "?") of GET /v1/members for r, every value
// percent-encoded (url.Values.Encode: a space is "+", a '+' is "%2B", as the daemon
// reads them); an error wrapping ErrBadFilter for input the daemon would refuse. The
// cursor is opaque: the daemon checks it.
func (r MemberPageRequest) Query() (string, error) {
	q := url.Values{}
	if err := r.MemberFilter.query(q); err != nil {
		return "", err
	}
	if r.Limit != 0 {
		if r.Limit < 1 || r.Limit > MaxMemberPage {
			return "", badFilter("limit: expected an integer from 1 to %d, got %d", MaxMemberPage, r.Limit)
		}
		q.Set("limit", strconv.Itoa(r.Limit))
	}
	if r.Cursor != "" {
		q.Set("cursor", r.Cursor)
	}
	return q.Encode(), nil
}

// MembersMatching is GET /v1/members with a filter (scope read): every matching member,
// sorted by name, in one answer. A filter the daemon would refuse is an error wrapping
// ErrBadFilter, and nothing is sent.
func (c *Client) MembersMatching(ctx context.Context, f MemberFilter) ([]Member, error) {
	page, err := c.MembersPage(ctx, MemberPageRequest{MemberFilter: f})
	if err != nil {
		return nil, err
	}
	return page.Members, nil
}

// MembersPage is GET /v1/members (scope read) with a filter, a page (Limit, Cursor) and
// optionally a conditional request (IfNoneMatch). The daemon's own refusals (a cursor it
// did not make) are an *APIError with Status 400 and Code "bad_request".
func (c *Client) MembersPage(ctx context.Context, r MemberPageRequest) (*MemberPage, error) {
	query, err := r.Query()
	if err != nil {
		return nil, err
	}
	path := "/v1/members"
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.request(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	req.URL.RawQuery = query
	req.Header.Set("Accept", "application/json")
	if r.IfNoneMatch != "" {
		req.Header.Set("If-None-Match", r.IfNoneMatch)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("heartbeatd: GET %s: %w", path, unwrapURLError(err))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("heartbeatd: GET %s: reading the answer: %w", path, err)
	}
	etag := resp.Header.Get("ETag")
	if resp.StatusCode == http.StatusNotModified {
		if etag == "" {
			etag = r.IfNoneMatch
		}
		return &MemberPage{Members: []Member{}, ETag: etag, NotModified: true}, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, apiError(resp, data)
	}
	var w struct {
		Members    []Member `json:"members"`
		NextCursor *string  `json:"next_cursor"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("heartbeatd: GET %s: unexpected answer: %v", path, err)
	}
	page := &MemberPage{Members: w.Members, ETag: etag}
	if w.NextCursor != nil {
		page.NextCursor = *w.NextCursor
	}
	return page, nil
}

// EachMember calls fn with every member matching f, in name order, asking for pageSize
// (1 to MaxMemberPage; 0 means 1000) at a time and following the cursors itself. A member
// present for the whole walk is passed exactly once. It stops at the first error, fn's
// included, and returns it.
func (c *Client) EachMember(ctx context.Context, f MemberFilter, pageSize int, fn func(Member) error) error {
	if pageSize == 0 {
		pageSize = 1000
	}
	r := MemberPageRequest{MemberFilter: f, Limit: pageSize}
	if _, err := r.Query(); err != nil {
		return err
	}
	for {
		page, err := c.MembersPage(ctx, r)
		if err != nil {
			return err
		}
		for _, m := range page.Members {
			if err := fn(m); err != nil {
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		r.Cursor = page.NextCursor
	}
}
