package heartbeatd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EventType is the kind of an Event.
type EventType string

const (
	// EventMember: a member's state changed (or, Initial, its state when the stream began).
	EventMember EventType = "member"
	// EventUser: a followed user went online or offline (or, Initial, its state).
	EventUser EventType = "user"
	// EventDropped: the daemon cut this stream off as a slow consumer; the stream
	// reconnects and resumes by itself.
	EventDropped EventType = "dropped"
)

// Event is one event of GET /v1/events. Exactly one of Member and User is set for those
// types; Reason for EventDropped.
type Event struct {
	Type   EventType
	Member *MemberEvent
	User   *UserEvent
	Reason string
}

// MemberEvent is a member's state change.
type MemberEvent struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"`
	// Previous is the state before; nil for a member seen for the first time (a join), and
	// in the daemon's initial events. After a reconnect, an initial event for a member this
	// stream already reported carries the state last reported here.
	Previous    *string `json:"previous"`
	Incarnation uint64  `json:"incarnation"`
	TimeMs      int64   `json:"time_ms"`
	// Initial: part of the state sent when a stream (re)connects, not a change as it
	// happened.
	Initial bool `json:"initial"`
	// Tags are the member's tags at this event; an event with State equal to *Previous
	// reports a change of tags (a new incarnation). Empty (nil) for none.
	Tags map[string]string `json:"tags"`
}

// UserEvent is a followed user's transition.
type UserEvent struct {
	User       uint64 `json:"user,string"`
	Online     bool   `json:"online"`
	LastSeenMs *int64 `json:"last_seen_ms"`
	TimeMs     int64  `json:"time_ms"`
	Initial    bool   `json:"initial"`
}

func (u *UserEvent) UnmarshalJSON(b []byte) error {
	var w struct {
		User       *wireID `json:"user"`
		Online     bool    `json:"online"`
		LastSeenMs *int64  `json:"last_seen_ms"`
		TimeMs     int64   `json:"time_ms"`
		Initial    bool    `json:"initial"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.User == nil {
		return fmt.Errorf("heartbeatd: a user event without \"user\": %s", b)
	}
	*u = UserEvent{User: uint64(*w.User), Online: w.Online, LastSeenMs: w.LastSeenMs, TimeMs: w.TimeMs, Initial: w.Initial}
	return nil
}

// EventsOptions select what a stream follows and how it reconnects.
type EventsOptions struct {
	// Users to follow: their online/offline transitions are sent. None: no user events.
	Users []uint64
	// Members: nil follows every member; a non-nil empty slice follows none; else only
	// these names.
	Members []string
	// OnState, if set, is called with false when the stream loses its connection (or the
	// first attempt fails) and with true when it is connected again; only on a change.
	// It runs on the goroutine that calls Next.
	OnState func(connected bool)
	// MinBackoff and MaxBackoff bound the wait before a reconnect attempt: it doubles from
	// MinBackoff up to MaxBackoff, with jitter (each wait a random time between half the
	// bound and the bound), and starts again from MinBackoff once a connection has lasted
	// longer than MaxBackoff. Defaults 100 ms and 5 s. A 429 or 503 answer's Retry-After
	// is waited at least.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout: a connection that delivers nothing, not even the daemon's keepalive
	// comment (events.keepalive, 15 s by default), for this long is dropped and opened
	// again (the daemon's host may have vanished). Default 45 s; negative: never.
	IdleTimeout time.Duration
}

// EventStream is an open GET /v1/events: call Next until it returns false, then Err.
//
//	s, err := c.Events(ctx, heartbeatd.EventsOptions{Users: []uint64{42}})
//	if err != nil { ... }
//	defer s.Close()
//	for s.Next() {
//		ev := s.Event()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
//
// The stream reconnects by itself when the connection is lost (the daemon restarts, the
// network fails, the daemon drops a slow consumer) and resumes: after a reconnect the
// daemon sends the current state again, and the stream passes on only the entries that
// differ from what it last delivered (as Initial events), so the consumer sees every
// change once. Changes that cancel out while disconnected (online, then offline again)
// are not seen.
//
// Next, Event and Err are for one goroutine; Close may be called from any goroutine.
type EventStream struct {
	c      *Client
	opts   EventsOptions
	ctx    context.Context
	cancel context.CancelFunc
	query  url.Values

	body      io.ReadCloser
	rd        *bufio.Reader
	stop      context.CancelFunc // ends the current connection
	idle      *time.Timer
	skipLF    bool      // the last line ended with a CR: an LF next is part of that line end
	since     time.Time // when the current connection opened
	connected int       // -1 unknown, 0 disconnected, 1 connected
	everUp    bool      // a connection succeeded before: its state is known
	resuming  bool      // the current connection is a reconnect: filter its initial state
	attempt   int
	rng       *rand.Rand

	members map[string]MemberEvent
	users   map[uint64]UserEvent

	ev  Event
	err error
}

// Events opens GET /v1/events (scope read). The first connection is made before it
// returns: an answer that retrying cannot fix (400 for a bad parameter, 401, 403) is
// returned as an *APIError, while an unreachable daemon or a 503 is retried by Next. The
// stream ends when ctx ends or Close is called.
func (c *Client) Events(ctx context.Context, opts EventsOptions) (*EventStream, error) {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 45 * time.Second
	}
	q := url.Values{"ids": {"string"}}
	if len(opts.Users) > 0 {
		parts := make([]string, len(opts.Users))
		for i, id := range opts.Users {
			parts[i] = strconv.FormatUint(id, 10)
		}
		q.Set("users", strings.Join(parts, ","))
	}
	if opts.Members != nil {
		q.Set("members", strings.Join(opts.Members, ","))
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &EventStream{
		c: c, opts: opts, ctx: sctx, cancel: cancel, query: q, connected: -1,
		rng:     newRand(),
		members: map[string]MemberEvent{},
		users:   map[uint64]UserEvent{},
	}
	if err := s.connect(); err != nil {
		if permanent(err) {
			cancel()
			return nil, err
		}
		s.setConnected(false)
	}
	return s, nil
}

func newRand() *rand.Rand { return rand.New(rand.NewSource(time.Now().UnixNano())) }

// permanent reports whether reconnecting cannot help: a 4xx answer other than 408 and 429.
func permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 &&
		ae.Status != http.StatusRequestTimeout && ae.Status != http.StatusTooManyRequests
}

func (s *EventStream) setConnected(up bool) {
	v := 0
	if up {
		v = 1
	}
	if s.connected == v {
		return
	}
	s.connected = v
	if s.opts.OnState != nil {
		s.opts.OnState(up)
	}
}

// connect opens one connection; on success the stream reads from it.
func (s *EventStream) connect() error {
	cctx, stop := context.WithCancel(s.ctx)
	req, err := s.c.request(cctx, http.MethodGet, "/v1/events", s.query, nil)
	if err != nil {
		stop()
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.c.http.Do(req)
	if err != nil {
		stop()
		return fmt.Errorf("heartbeatd: GET /v1/events: %w", unwrapURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		stop()
		return apiError(resp, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		stop()
		return fmt.Errorf("heartbeatd: GET /v1/events: answered with Content-Type %q, not text/event-stream", ct)
	}
	s.body, s.stop = resp.Body, stop
	s.rd = bufio.NewReaderSize(resp.Body, 16<<10)
	s.skipLF = false
	s.since = time.Now()
	s.resuming = s.everUp
	s.everUp = true
	if s.opts.IdleTimeout > 0 {
		// Cancelling the connection's context unblocks a read in progress.
		s.idle = time.AfterFunc(s.opts.IdleTimeout, stop)
	}
	s.setConnected(true)
	return nil
}

func (s *EventStream) disconnect() {
	if s.body == nil {
		return
	}
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	s.body.Close()
	s.stop()
	s.body, s.rd, s.stop = nil, nil, nil
	if time.Since(s.since) > s.opts.MaxBackoff {
		s.attempt = 0
	}
}

// backoff is the wait before reconnect attempt s.attempt (0 for the first).
func (s *EventStream) backoff() time.Duration {
	d := s.opts.MinBackoff
	for i := 0; i < s.attempt && d < s.opts.MaxBackoff; i++ {
		d *= 2
	}
	if d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return d/2 + time.Duration(s.rng.Int63n(int64(d/2)+1))
}

// Next waits for the next event, reconnecting as needed, and reports whether there is one.
// It returns false when the stream's context ends, after Close, or on an error that
// reconnecting cannot fix (see Err).
func (s *EventStream) Next() bool {
	var retryAfter time.Duration
	for {
		if s.err != nil {
			return false
		}
		if s.ctx.Err() != nil {
			s.disconnect()
			return false
		}
		if s.body == nil {
			wait := s.backoff()
			if retryAfter > wait {
				wait = retryAfter
			}
			retryAfter = 0
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				continue
			case <-t.C:
			}
			s.attempt++
			if err := s.connect(); err != nil {
				if s.ctx.Err() != nil {
					continue
				}
				if permanent(err) {
					s.err = err
					return false
				}
				var ae *APIError
				if errors.As(err, &ae) {
					retryAfter = ae.RetryAfter
				}
				s.setConnected(false)
			}
			continue
		}
		if s.idle != nil {
			// The idle clock runs only while waiting for the daemon, not while the consumer
			// handles an event.
			s.idle.Reset(s.opts.IdleTimeout)
		}
		name, data, err := s.readEvent()
		if err != nil {
			s.disconnect()
			if s.ctx.Err() == nil {
				s.setConnected(false)
			}
			continue
		}
		if s.accept(name, data) {
			if s.idle != nil {
				s.idle.Stop()
			}
			return true
		}
	}
}

// accept decodes one SSE event into s.ev and reports whether to deliver it.
func (s *EventStream) accept(name string, data []byte) bool {
	switch name {
	case "member":
		var m MemberEvent
		if json.Unmarshal(data, &m) != nil {
			return false // not for this client version to understand
		}
		last, seen := s.members[m.Name]
		if m.Initial && s.resuming && seen && last.State == m.State && last.Incarnation == m.Incarnation &&
			last.Address == m.Address {
			return false
		}
		if m.Initial && seen && m.Previous == nil {
			prev := last.State
			m.Previous = &prev
		}
		s.members[m.Name] = m
		s.ev = Event{Type: EventMember, Member: &m}
		return true
	case "user":
		var u UserEvent
		if json.Unmarshal(data, &u) != nil {
			return false
		}
		last, seen := s.users[u.User]
		if u.Initial && s.resuming && seen && last.Online == u.Online && sameTime(last.LastSeenMs, u.LastSeenMs) {
			return false
		}
		s.users[u.User] = u
		s.ev = Event{Type: EventUser, User: &u}
		return true
	case "dropped":
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(data, &d)
		s.ev = Event{Type: EventDropped, Reason: d.Reason}
		return true
	}
	return false // an event type this client does not know
}

func sameTime(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// maxEventBytes bounds one event (the daemon's are a few hundred bytes).
const maxEventBytes = 1 << 20

// readEvent reads lines up to the next dispatched event (text/event-stream: lines end in
// LF, CRLF or CR; "field: value", one optional space after the colon; lines starting with
// ':' are comments; an event is dispatched at a blank line when it has data).
func (s *EventStream) readEvent() (string, []byte, error) {
	name := ""
	var data []byte
	hasData := false
	var line []byte
	for {
		var err error
		line, err = s.readLine(line[:0])
		if err != nil {
			return "", nil, err
		}
		if s.idle != nil {
			s.idle.Reset(s.opts.IdleTimeout)
		}
		if len(line) == 0 {
			if hasData {
				if name == "" {
					name = "message"
				}
				return name, data, nil
			}
			name = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := indexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
			if len(data) > maxEventBytes {
				return "", nil, errors.New("heartbeatd: an event larger than 1 MiB")
			}
		}
		// "id" and "retry" are not used by the daemon; other fields are ignored.
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// readLine appends the next line, without its end, to buf. A CR ends a line at once; an
// LF right after it is then skipped when it arrives.
func (s *EventStream) readLine(buf []byte) ([]byte, error) {
	for {
		b, err := s.rd.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		skipLF := s.skipLF
		s.skipLF = false
		switch b {
		case '\n':
			if skipLF {
				continue
			}
			return buf, nil
		case '\r':
			s.skipLF = true
			return buf, nil
		default:
			if len(buf) >= maxEventBytes {
				return buf, errors.New("heartbeatd: an event stream line longer than 1 MiB")
			}
			buf = append(buf, b)
		}
	}
}

// Event is the event Next found.
func (s *EventStream) Event() Event { return s.ev }

// Err is the error that ended the stream: nil when it ended because its context ended or
// Close was called; an *APIError (400, 401, 403) when a reconnect was refused for good.
func (s *EventStream) Err() error { return s.err }

// Close ends the stream and its connection; Next then returns false. Safe from any
// goroutine, and more than once.
func (s *EventStream) Close() error {
	s.cancel()
	return nil
}
