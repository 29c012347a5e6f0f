package heartbeatd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const maxID = uint64(18446744073709551615)

func wantAPIError(t *testing.T, err error, status int, code string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *APIError %d %s, got %v", status, code, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("want %d %s, got %d %s (%s)", status, code, ae.Status, ae.Code, ae.Message)
	}
	return ae
}

// TestTCPAndSocket: the same routes over loopback TCP (with a token) and over the Unix
// socket (without one).
func TestTCPAndSocket(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		c    *Client
	}{
		{"tcp", tcpClient(t, shared, opsToken)},
		{"unix", newClient(t, Options{SocketPath: shared.socket})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			h, err := c.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != "ok" || h.Node != "go-shared" || h.Presence.Backend != "memory" || h.Version == "" {
				t.Fatalf("health: %+v", h)
			}
			members, err := c.Members(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 1 || !members[0].Self || members[0].Name != "go-shared" ||
				members[0].State != StateAlive || members[0].Address != shared.udpAddr {
				t.Fatalf("members: %+v", members)
			}
			m, err := c.Member(ctx, "go-shared")
			if err != nil || m.Name != "go-shared" || !m.Self {
				t.Fatalf("member: %+v, %v", m, err)
			}
			_, err = c.Member(ctx, "nobody")
			wantAPIError(t, err, 404, "unknown_member")

			keys, err := c.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys.Keys) != 0 || keys.PlaintextMembers != 1 {
				t.Fatalf("keys: %+v", keys)
			}

			id := uint64(1000)
			if tc.name == "unix" {
				id = 1001
			}
			before := time.Now()
			if err := c.Heartbeat(ctx, id); err != nil {
				t.Fatal(err)
			}
			st, err := c.Status(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.User != id || st.LastSeenMs == nil {
				t.Fatalf("status after a heartbeat: %+v", st)
			}
			// Online unless the machine stalled past presence.timeout in between.
			if !st.Online && time.Since(before) < sharedPresenceTimeout {
				t.Fatalf("user %d offline right after its heartbeat: %+v", id, st)
			}
			n, err := c.Counts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.Tracked < 1 {
				t.Fatalf("counts after a heartbeat: %+v", n)
			}
			if err := c.Logout(ctx, id); err != nil {
				t.Fatal(err)
			}
			st, err = c.Status(ctx, id)
			if err != nil || st.Online || st.LastSeenMs == nil {
				t.Fatalf("status after logout: %+v, %v", st, err)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	needDaemon(t)
	h, err := tcpClient(t, shared, readerToken).History(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The first point is taken at start.
	if h.IntervalMs <= 0 || len(h.Points) < 1 || h.Points[0].TimeMs <= 0 {
		t.Fatalf("history: %+v", h)
	}
	for i := 1; i < len(h.Points); i++ {
		if h.Points[i].TimeMs <= h.Points[i-1].TimeMs {
			t.Fatalf("history not oldest first: %+v", h.Points)
		}
	}
}

// TestAuth: 401 without a valid token, 403 without the route's scope, as *APIError.
func TestAuth(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	t.Setenv("HEARTBEATD_TOKEN", "")

	none := tcpClient(t, shared, "")
	_, err := none.Health(ctx)
	wantAPIError(t, err, 401, "unauthenticated")

	wrong := tcpClient(t, shared, "not-a-known-token-0123456789")
	err = wrong.Heartbeat(ctx, 1)
	wantAPIError(t, err, 401, "unauthenticated")

	reader := tcpClient(t, shared, readerToken)
	err = reader.Heartbeat(ctx, 1)
	ae := wantAPIError(t, err, 403, "forbidden")
	if !strings.Contains(ae.Error(), "403 forbidden") {
		t.Fatalf("message: %q", ae.Error())
	}
	_, err = reader.Keys(ctx)
	wantAPIError(t, err, 403, "forbidden")
	_, err = reader.HeartbeatMany(ctx, []uint64{1, 2})
	wantAPIError(t, err, 403, "forbidden")

	writer := tcpClient(t, shared, writerToken)
	_, err = writer.Status(ctx, 1)
	wantAPIError(t, err, 403, "forbidden")
	// A write-only gateway cannot read presence.max_batch: its batches still go out.
	ids := []uint64{1, 2, 3, 4, 5, 6, 7}
	n, err := writer.HeartbeatMany(ctx, ids)
	if err != nil || n != len(ids) {
		t.Fatalf("write-only HeartbeatMany: %d, %v", n, err)
	}

	_, err = tcpClient(t, shared, "").Events(ctx, EventsOptions{})
	wantAPIError(t, err, 401, "unauthenticated")

	// The token from the environment when none is given.
	t.Setenv("HEARTBEATD_TOKEN", readerToken)
	if _, err := tcpClient(t, shared, "").Health(ctx); err != nil {
		t.Fatalf("with HEARTBEATD_TOKEN: %v", err)
	}
}

// dialCounter wraps a dialer and records each connection's local address.
type dialCounter struct {
	mu    sync.Mutex
	local []string
}

func (d *dialCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.local = append(d.local, network+" "+conn.LocalAddr().String())
		d.mu.Unlock()
	}
	return conn, err
}

func (d *dialCounter) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.local)
}

// distinctPorts counts the distinct local TCP ports connections were made from.
func (d *dialCounter) distinct() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := map[string]bool{}
	for _, l := range d.local {
		set[l] = true
	}
	return len(set)
}

// TestKeepAlive: sequential calls share one connection; concurrent ones at most one each.
func TestKeepAlive(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"tcp", Options{URL: "http://" + shared.httpAddr, Token: gatewayToken}},
		{"unix", Options{SocketPath: shared.socket}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dc dialCounter
			tc.o.DialContext = dc.dial
			c := newClient(t, tc.o)
			for i := 0; i < 30; i++ {
				var err error
				switch i % 5 {
				case 0:
					_, err = c.Health(ctx)
				case 1:
					err = c.Heartbeat(ctx, uint64(2000+i))
				case 2:
					_, err = c.Status(ctx, uint64(2000+i))
				case 3:
					_, err = c.HeartbeatMany(ctx, []uint64{1, 2, 3, 4, 5, 6, 7, 8})
				case 4:
					err = c.Logout(ctx, uint64(2000+i))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := dc.count(); n != 1 {
				t.Fatalf("30 sequential calls opened %d connections, want 1: %v", n, dc.local)
			}
			if tc.name == "tcp" && dc.distinct() != 1 {
				t.Fatalf("local ports: %v", dc.local)
			}

			const workers = 8
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						if err := c.Heartbeat(ctx, uint64(3000+w)); err != nil {
							errs <- err
							return
						}
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Concurrent calls reuse connections, within the per-host cap (MaxConns, 32). Not
			// at most one per worker: net/http may dial for a waiting call and then hand it a
			// connection freed meanwhile, keeping the new one idle (seen once under ASan load).
			if n := dc.count(); n > 32 {
				t.Fatalf("%d workers x 20 calls opened %d connections, above MaxConns (32)", workers, n)
			}
		})
	}
}

// countingTransport counts requests by path.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// TestBatchSplit: the shared daemon's presence.max_batch is 5; the client learns it from
// /v1/health and splits.
func TestBatchSplit(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	c := tcpClient(t, shared, gatewayToken)
	ct := &countingTransport{next: c.transport, n: map[string]int{}}
	c.http.Transport = ct

	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Presence.MaxBatch != 5 {
		t.Fatalf("health's presence.max_batch: %d, want 5", h.Presence.MaxBatch)
	}
	// The daemon refuses more than 5 at once...
	err = c.do(ctx, http.MethodPost, "/v1/users/heartbeat", nil, appendUsersBody(nil, []uint64{1, 2, 3, 4, 5, 6}), nil)
	wantAPIError(t, err, 413, "batch_too_large")

	// ...so 12 go as 5 + 5 + 2.
	ids := []uint64{4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4010, 4011, 4012}
	n, err := c.HeartbeatMany(ctx, ids)
	if err != nil || n != len(ids) {
		t.Fatalf("HeartbeatMany: %d, %v", n, err)
	}
	if got := ct.get("POST /v1/users/heartbeat"); got != 1+3 {
		t.Fatalf("%d batch requests, want 3 (and the refused one)", got-1)
	}
	if mb, _ := c.MaxBatch(ctx); mb != 5 {
		t.Fatalf("MaxBatch: %d", mb)
	}
	if got := ct.get("GET /v1/health"); got != 2 {
		t.Fatalf("health read %d times (once by the test, once for max_batch), want 2", got)
	}

	// Status of 13 ids (a duplicate, an unknown one), in request order across batches.
	unknown := freshID()
	query := append([]uint64{unknown}, ids...)
	query[7] = 4001
	sts, err := c.StatusMany(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != len(query) {
		t.Fatalf("%d answers for %d ids", len(sts), len(query))
	}
	for i, st := range sts {
		if st.User != query[i] {
			t.Fatalf("answer %d is user %d, want %d", i, st.User, query[i])
		}
		known := query[i] != unknown
		if known != (st.LastSeenMs != nil) {
			t.Fatalf("answer %d: %+v", i, st)
		}
	}
	if got := ct.get("POST /v1/users/status"); got != 3 {
		t.Fatalf("%d status requests for 13 ids, want 3", got)
	}

	// Empty input: no request, no error.
	if n, err := c.HeartbeatMany(ctx, nil); n != 0 || err != nil {
		t.Fatalf("empty HeartbeatMany: %d, %v", n, err)
	}
	if sts, err := c.StatusMany(ctx, nil); len(sts) != 0 || err != nil {
		t.Fatalf("empty StatusMany: %v, %v", sts, err)
	}
}

// TestLargestID: 2^64-1 goes and comes back exactly, in paths, bodies and answers.
func TestLargestID(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	c := tcpClient(t, shared, gatewayToken)
	if err := c.Heartbeat(ctx, maxID); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, maxID)
	if err != nil {
		t.Fatal(err)
	}
	if st.User != maxID || st.LastSeenMs == nil {
		t.Fatalf("status: %+v", st)
	}
	if n, err := c.HeartbeatMany(ctx, []uint64{maxID, maxID - 1, 0}); err != nil || n != 3 {
		t.Fatalf("HeartbeatMany: %d, %v", n, err)
	}
	sts, err := c.StatusMany(ctx, []uint64{maxID - 1, maxID, 0})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{maxID - 1, maxID, 0} {
		if sts[i].User != want || sts[i].LastSeenMs == nil {
			t.Fatalf("answer %d: %+v, want user %d seen", i, sts[i], want)
		}
	}
	// The daemon writes ids as strings when asked (what this client asks).
	var raw map[string]interface{}
	if err := c.do(ctx, http.MethodGet, userPath(maxID), idsString, nil, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["user"] != "18446744073709551615" {
		t.Fatalf("GET /v1/users/%d?ids=string: user %#v", maxID, raw["user"])
	}
}
