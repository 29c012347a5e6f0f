package heartbeatd

// Online (POST /v1/users/status?format=bits): against the shared daemon (presence.max_batch
// 5, so batches end inside a byte), and every malformed answer against a fake server.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func wantOnline(t *testing.T, got []bool, err error, want []bool) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Online: %v, want %v", got, want)
	}
}

// TestOnlineAgainstTheDaemon: online, offline (logged out) and unknown users, in request
// order with duplicates, at sizes around a byte and across batches.
func TestOnlineAgainstTheDaemon(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	c := tcpClient(t, shared, gatewayToken)
	ct := &countingTransport{next: c.transport, n: map[string]int{}}
	c.http.Transport = ct

	var ids []uint64
	for i := 0; i < 12; i++ {
		ids = append(ids, freshID())
	}
	online := map[uint64]bool{ids[0]: true, ids[3]: true, ids[7]: true, ids[8]: true, ids[11]: true}
	var on []uint64
	for id := range online {
		on = append(on, id)
	}
	if _, err := c.HeartbeatMany(ctx, append(on, ids[5])); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx, ids[5]); err != nil { // known, offline
		t.Fatal(err)
	}
	expect := func(asked []uint64) []bool {
		out := make([]bool, len(asked))
		for i, id := range asked {
			out[i] = online[id]
		}
		return out
	}
	for _, n := range []int{1, 5, 7, 8, 9, 12} {
		before := ct.get("POST /v1/users/status")
		got, err := c.Online(ctx, ids[:n])
		wantOnline(t, got, err, expect(ids[:n]))
		if sent, want := ct.get("POST /v1/users/status")-before, (n+4)/5; sent != want {
			t.Fatalf("%d ids: %d requests, want %d (max_batch 5)", n, sent, want)
		}
	}
	// Order, duplicates, an unknown id, the largest id, across three batches.
	asked := []uint64{ids[11], ids[5], freshID(), ids[0], ids[0], maxID - 3, ids[8], ids[3], ids[1], ids[7], ids[11]}
	got, err := c.Online(ctx, asked)
	wantOnline(t, got, err, expect(asked))
	sts, err := c.StatusMany(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range sts {
		if st.Online != got[i] {
			t.Fatalf("id %d: Online %v, StatusMany %+v", asked[i], got[i], st)
		}
	}
	if got, err := c.Online(ctx, nil); len(got) != 0 || err != nil {
		t.Fatalf("empty Online: %v, %v", got, err)
	}
	// The Unix socket, and the largest id.
	s := newClient(t, Options{SocketPath: shared.socket})
	if err := s.Heartbeat(ctx, maxID); err != nil {
		t.Fatal(err)
	}
	got, err = s.Online(ctx, []uint64{maxID, maxID - 1})
	wantOnline(t, got, err, []bool{true, false})
}

// fakeBits is a server answering every POST with the current answer, recording the bodies.
type fakeBits struct {
	mu     sync.Mutex
	status int
	header map[string]string
	body   []byte
	asked  [][]string
}

func (f *fakeBits) set(status int, header map[string]string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.header, f.body = status, header, body
}

func (f *fakeBits) serve(w http.ResponseWriter, r *http.Request) {
	var b struct{ Users []string }
	data, _ := io.ReadAll(r.Body)
	json.Unmarshal(data, &b)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.RawQuery != "format=bits" || r.Header.Get("Accept") != "application/octet-stream" {
		w.WriteHeader(400)
		return
	}
	f.asked = append(f.asked, b.Users)
	for k, v := range f.header {
		w.Header()[k] = []string{v}
	}
	w.WriteHeader(f.status)
	w.Write(f.body)
}

func bitsAnswer(count string) map[string]string {
	h := map[string]string{"Content-Type": "application/octet-stream"}
	if count != "" {
		h["X-Heartbeatd-Count"] = count
	}
	return h
}

func TestOnlineReadsBitsLSBFirst(t *testing.T) {
	f := &fakeBits{}
	c := fakeServer(t, f.serve)
	c.fixedBatch = 100
	ctx := testCtx(t)
	f.set(200, bitsAnswer("3"), []byte{0x05})
	got, err := c.Online(ctx, []uint64{42, 7, maxID})
	wantOnline(t, got, err, []bool{true, false, true})
	if fmt.Sprint(f.asked) != "[[42 7 18446744073709551615]]" {
		t.Fatalf("asked %v", f.asked)
	}
	f.set(200, map[string]string{"Content-Type": "Application/Octet-Stream; x=y", "X-Heartbeatd-Count": "9"}, []byte{0x81, 0x01})
	got, err = c.Online(ctx, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8})
	wantOnline(t, got, err, []bool{true, false, false, false, false, false, false, true, true})
	f.set(200, bitsAnswer("8"), []byte{0xff})
	got, err = c.Online(ctx, []uint64{0, 1, 2, 3, 4, 5, 6, 7})
	wantOnline(t, got, err, []bool{true, true, true, true, true, true, true, true})
}

func TestOnlineRefusesMalformedAnswers(t *testing.T) {
	f := &fakeBits{}
	c := fakeServer(t, f.serve)
	c.fixedBatch = 100
	ctx := testCtx(t)
	three := []uint64{42, 7, 43}
	nine := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, tc := range []struct {
		name   string
		ids    []uint64
		status int
		header map[string]string
		body   []byte
	}{
		{"json, an older daemon", three, 200, map[string]string{"Content-Type": "application/json", "X-Heartbeatd-Count": "3"}, []byte(`{"users":[]}`)},
		{"no content type", three, 200, map[string]string{"Content-Type": "", "X-Heartbeatd-Count": "3"}, []byte{0x05}},
		{"no count", three, 200, bitsAnswer(""), []byte{0x05}},
		{"count too small", three, 200, bitsAnswer("2"), []byte{0x05}},
		{"count too large", three, 200, bitsAnswer("4"), []byte{0x05}},
		{"count not decimal", three, 200, bitsAnswer("+3"), []byte{0x05}},
		{"count with a space", three, 200, bitsAnswer("3 3"), []byte{0x05}},
		{"body empty", three, 200, bitsAnswer("3"), nil},
		{"body too long", three, 200, bitsAnswer("3"), []byte{0x05, 0x00}},
		{"padding bit set", three, 200, bitsAnswer("3"), []byte{0x0d}},
		{"top padding bit set", three, 200, bitsAnswer("3"), []byte{0x85}},
		{"status 204", three, 204, map[string]string{}, nil},
		{"status 202", three, 202, bitsAnswer("3"), []byte{0x05}},
		{"9 ids in 1 byte", nine, 200, bitsAnswer("9"), []byte{0xff}},
		{"9 ids in 3 bytes", nine, 200, bitsAnswer("9"), []byte{0xff, 0x01, 0x00}},
		{"9 ids, padding", nine, 200, bitsAnswer("9"), []byte{0xff, 0x02}},
	} {
		f.set(tc.status, tc.header, tc.body)
		got, err := c.Online(ctx, tc.ids)
		if !errors.Is(err, ErrBadAnswer) || got != nil {
			t.Fatalf("%s: %v, %v; want an error wrapping ErrBadAnswer", tc.name, got, err)
		}
		if !strings.Contains(err.Error(), "format=bits") {
			t.Fatalf("%s: %v does not name the request", tc.name, err)
		}
	}
	// Two count headers, even agreeing ones.
	c2 := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Add("X-Heartbeatd-Count", "3")
		w.Header().Add("X-Heartbeatd-Count", "3")
		w.Write([]byte{0x05})
	})
	c2.fixedBatch = 100
	if _, err := c2.Online(ctx, three); !errors.Is(err, ErrBadAnswer) {
		t.Fatalf("two count headers: %v", err)
	}
	// Error statuses stay API errors.
	f.set(503, map[string]string{"Content-Type": "application/json", "Retry-After": "1"},
		[]byte(`{"error":"presence_unavailable","message":"redis down"}`))
	_, err := c.Online(ctx, three)
	wantAPIError(t, err, 503, "presence_unavailable")
}
