package heartbeatd

// Tests without a daemon: a fake server (httptest, loopback) answers what the daemon could,
// including the forms it no longer writes (ids as numbers) and odd stream framing.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func fakeServer(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newClient(t, Options{URL: srv.URL, Token: "unit-test-token-0123456789"})
}

func TestDecodeIDs(t *testing.T) {
	for _, body := range []string{
		`{"user":18446744073709551615,"online":true,"last_seen_ms":1795906538039}`,
		`{"user":"18446744073709551615","online":true,"last_seen_ms":1795906538039}`,
	} {
		var st UserStatus
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if st.User != maxID || !st.Online || st.LastSeenMs == nil || *st.LastSeenMs != 1795906538039 {
			t.Fatalf("%s: %+v", body, st)
		}
	}
	for _, bad := range []string{`{"user":-1}`, `{"user":1.5}`, `{"user":"18446744073709551616"}`, `{"user":"x"}`, `{"online":true}`} {
		var st UserStatus
		if err := json.Unmarshal([]byte(bad), &st); err == nil {
			t.Fatalf("%s decoded as %+v", bad, st)
		}
	}
	// Encoded with the id as a string, so JavaScript reads it exactly.
	b, _ := json.Marshal(UserStatus{User: maxID})
	if !strings.Contains(string(b), `"user":"18446744073709551615"`) {
		t.Fatalf("encoded: %s", b)
	}
	if got := string(appendUsersBody(nil, []uint64{0, 42, maxID})); got != `{"users":["0","42","18446744073709551615"]}` {
		t.Fatalf("body: %s", got)
	}
}

func TestRequestsAndErrors(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/health":
			w.Write([]byte(`{"status":"ok","presence":{"max_batch":100}}`))
		case "/v1/users/status":
			w.Write([]byte(`{"users":[{"user":7,"online":false,"last_seen_ms":null}]}`))
		case "/v1/users/7":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
			w.Write([]byte(`{"error":"rate_limited","message":"slow down"}`))
		default:
			w.WriteHeader(502)
			w.Write([]byte("<html>bad gateway</html>"))
		}
	})
	ctx := testCtx(t)
	sts, err := c.StatusMany(ctx, []uint64{7})
	if err != nil || len(sts) != 1 || sts[0].User != 7 || sts[0].LastSeenMs != nil {
		t.Fatalf("StatusMany: %+v, %v", sts, err)
	}
	_, err = c.Status(ctx, 7)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 429 || ae.Code != "rate_limited" || ae.RetryAfter != 3*time.Second || !ae.Temporary() {
		t.Fatalf("429: %#v", err)
	}
	_, err = c.Counts(ctx)
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || !strings.Contains(ae.Message, "bad gateway") {
		t.Fatalf("502 from a proxy: %#v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`GET /v1/health Bearer unit-test-token-0123456789 `,
		`POST /v1/users/status?ids=string Bearer unit-test-token-0123456789 {"users":["7"]}`,
		`GET /v1/users/7?ids=string Bearer unit-test-token-0123456789 `,
	}
	for i, w := range want {
		if i >= len(seen) || seen[i] != w {
			t.Fatalf("request %d: %q, want %q", i, seen, w)
		}
	}
}

// TestBatchShrinks: a 413 batch_too_large (the daemon restarted with a smaller
// presence.max_batch) is answered by sending the same ids in smaller batches.
func TestBatchShrinks(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/health" {
			w.Write([]byte(`{"status":"ok","presence":{"backend":"memory","max_batch":10}}`))
			return
		}
		var b struct{ Users []string }
		json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		sizes = append(sizes, len(b.Users))
		mu.Unlock()
		if len(b.Users) > 3 {
			w.WriteHeader(413)
			fmt.Fprint(w, `{"error":"batch_too_large","message":"users: more than 3 ids (presence.max_batch)"}`)
			return
		}
		fmt.Fprintf(w, `{"accepted":%d}`, len(b.Users))
	})
	n, err := c.HeartbeatMany(testCtx(t), []uint64{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil || n != 8 {
		t.Fatalf("HeartbeatMany: %d, %v", n, err)
	}
	if got := fmt.Sprint(sizes); got != "[8 3 3 2]" {
		t.Fatalf("batch sizes %s, want [8 3 3 2]", got)
	}
}

// sseScript serves one scripted stream per connection, then ends it.
func sseScript(t *testing.T, conns ...string) (*Client, *int32) {
	var mu sync.Mutex
	var served int32
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ids") != "string" {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		i := int(served)
		served++
		mu.Unlock()
		if i >= len(conns) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte(conns[i]))
	})
	return c, &served
}

func TestEventStreamParsingAndResume(t *testing.T) {
	first := "event: member\ndata: {\"name\":\"db-1\",\"address\":\"a:1\",\"state\":\"alive\",\"previous\":null,\"incarnation\":0,\"time_ms\":1,\"initial\":true}\n\n" +
		": keepalive\r\n" +
		// CRLF, a number id, data split over two lines (joined with \n: still JSON).
		"event: user\r\ndata: {\"user\":42,\"online\":true,\r\ndata: \"last_seen_ms\":5,\"time_ms\":6,\"initial\":true}\r\n\r\n" +
		// CR only.
		"event: user\rdata: {\"user\":\"43\",\"online\":false,\"last_seen_ms\":null,\"time_ms\":6,\"initial\":true}\r\r" +
		"event: novelty\ndata: {}\n\n" +
		"event: user\ndata:{\"user\":\"43\",\"online\":true,\"last_seen_ms\":7,\"time_ms\":7,\"initial\":false}\n\n" +
		"event: dropped\ndata: {\"reason\":\"slow consumer\"}\n\n"
	// After the reconnect: db-1 and 42 unchanged (suppressed), 43 went offline, db-1's
	// incarnation... unchanged; then a change.
	second := "event: member\ndata: {\"name\":\"db-1\",\"address\":\"a:1\",\"state\":\"alive\",\"previous\":null,\"incarnation\":0,\"time_ms\":9,\"initial\":true}\n\n" +
		"event: user\ndata: {\"user\":\"42\",\"online\":true,\"last_seen_ms\":5,\"time_ms\":9,\"initial\":true}\n\n" +
		"event: user\ndata: {\"user\":\"43\",\"online\":false,\"last_seen_ms\":7,\"time_ms\":9,\"initial\":true}\n\n" +
		"event: member\ndata: {\"name\":\"db-1\",\"address\":\"a:1\",\"state\":\"suspect\",\"previous\":\"alive\",\"incarnation\":0,\"time_ms\":10,\"initial\":false}\n\n"
	// The third: db-1 came back alive with a new incarnation while away.
	third := "event: member\ndata: {\"name\":\"db-1\",\"address\":\"a:1\",\"state\":\"alive\",\"previous\":null,\"incarnation\":1,\"time_ms\":11,\"initial\":true}\n\n" +
		"event: user\ndata: {\"user\":\"42\",\"online\":true,\"last_seen_ms\":5,\"time_ms\":11,\"initial\":true}\n\n"
	c, served := sseScript(t, first, second, third)
	var states []bool
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	s, err := c.Events(ctx, EventsOptions{Users: []uint64{42, 43}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		OnState: func(up bool) { states = append(states, up) }})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 8 && s.Next() {
		ev := s.Event()
		d := describe(ev)
		if ev.Type == EventMember && ev.Member.Previous != nil {
			d += " previous=" + *ev.Member.Previous
		}
		got = append(got, d)
	}
	s.Close()
	want := []string{
		"member db-1 alive incarnation=0 initial=true",
		"user 42 online=true initial=true last_seen=5",
		"user 43 online=false initial=true last_seen=null",
		"user 43 online=true initial=false last_seen=7",
		"dropped slow consumer",
		"user 43 online=false initial=true last_seen=7",
		"member db-1 suspect incarnation=0 initial=false previous=alive",
		"member db-1 alive incarnation=1 initial=true previous=suspect",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if *served != 3 {
		t.Fatalf("%d connections, want 3", *served)
	}
	if fmt.Sprint(states[:4]) != "[true false true false]" {
		t.Fatalf("OnState calls: %v", states)
	}
}

func TestEventStreamPermanentError(t *testing.T) {
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		w.Write([]byte(`{"error":"forbidden","message":"no read scope"}`))
	})
	_, err := c.Events(testCtx(t), EventsOptions{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "forbidden" {
		t.Fatalf("Events: %v", err)
	}
}

func TestEventStreamIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: dropped\ndata: {\"reason\":\"x\"}\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent until the client gives up
	})
	s, err := c.Events(testCtx(t), EventsOptions{IdleTimeout: 100 * time.Millisecond, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2; i++ {
		if !s.Next() {
			t.Fatalf("Next: %v", s.Err())
		}
		// While the consumer holds an event the idle clock is stopped: a slow consumer is
		// not taken for a vanished daemon.
		if s.idle == nil || s.idle.Stop() {
			t.Fatal("the idle timer runs while Next is not waiting")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 2 {
		t.Fatalf("%d connections, want 2 (a silent one is dropped after IdleTimeout)", conns)
	}
}

func TestTokenSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("file-token-0123456789abcdef=\n# comment\n"), 0o600)
	t.Setenv("HEARTBEATD_TOKEN", "env-token-0123456789abcdef")

	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Token: "given-token-0123456789"}, "Bearer given-token-0123456789"},
		{Options{TokenFile: file}, "Bearer file-token-0123456789abcdef="},
		{Options{}, "Bearer env-token-0123456789abcdef"},
	} {
		tc.o.URL = "http://127.0.0.1:1"
		c, err := New(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if c.auth != tc.want {
			t.Fatalf("%+v: %q, want %q", tc.o, c.auth, tc.want)
		}
	}

	os.Chmod(file, 0o644)
	_, err := New(Options{URL: "http://127.0.0.1:1", TokenFile: file})
	if err == nil || !strings.Contains(err.Error(), "chmod o-rwx") || strings.Contains(err.Error(), "file-token") {
		t.Fatalf("a token file others may read: %v", err)
	}
	os.WriteFile(file, []byte("not a token\n"), 0o600)
	os.Chmod(file, 0o600)
	if _, err := New(Options{URL: "http://127.0.0.1:1", TokenFile: file}); err == nil || strings.Contains(err.Error(), "not a token\n") {
		t.Fatalf("a bad token file: %v", err)
	}
	for _, o := range []Options{
		{URL: "ftp://x"},
		{URL: "http://x", SocketPath: "/s"},
		{URL: "https://x", CertFile: "c.pem"},
		{URL: "http://x?y=1"},
		{Token: "has space"},
	} {
		if _, err := New(o); err == nil {
			t.Fatalf("%+v accepted", o)
		}
	}
}

// TestStaleConnectionRetried: when the daemon closes a kept-alive connection just as a
// request is sent on it (api.idle_timeout), the request goes again on a new connection:
// every route is idempotent, and the client says so.
func TestStaleConnectionRetried(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 2 || n == 4 {
			// Read the request, then close the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var dc dialCounter
	c := newClient(t, Options{URL: srv.URL, DialContext: dc.dial})
	ctx := testCtx(t)
	if err := c.Heartbeat(ctx, 1); err != nil { // request 1: a new connection, kept
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, 2); err != nil { // 2: closed unanswered; 3: again, answered
		t.Fatalf("a heartbeat on a connection the server closed: %v", err)
	}
	if err := c.Logout(ctx, 2); err != nil { // 4: closed unanswered; 5: again
		t.Fatalf("a logout on a connection the server closed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if requests != 5 || dc.count() != 3 {
		t.Fatalf("%d requests on %d connections, want 5 on 3", requests, dc.count())
	}
}

// TestBackoff: each wait lies between half the bound and the bound, which doubles from
// MinBackoff up to MaxBackoff.
func TestBackoff(t *testing.T) {
	s := &EventStream{opts: EventsOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second},
		rng: newRand()}
	bounds := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for attempt, bound := range bounds {
		bound *= time.Millisecond
		s.attempt = attempt
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := s.backoff()
			if d < bound/2 || d > bound {
				t.Fatalf("attempt %d: waited %v, want within [%v, %v]", attempt, d, bound/2, bound)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Fatalf("attempt %d: only %d distinct waits in 200: no jitter?", attempt, len(seen))
		}
	}
	s.attempt = 1000 // no overflow
	if d := s.backoff(); d > 5*time.Second {
		t.Fatalf("attempt 1000: %v", d)
	}
}
