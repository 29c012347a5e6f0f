package heartbeatd

import (
	"context"
	"testing"
	"time"
)

func isUser(id uint64, online, initial bool) func(Event) bool {
	return func(ev Event) bool {
		return ev.Type == EventUser && ev.User.User == id && ev.User.Online == online && ev.User.Initial == initial
	}
}

// TestEventsOnlineOffline: a followed user's initial state, then online at a heartbeat,
// offline at presence.timeout, and offline at a logout.
func TestEventsOnlineOffline(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	c := tcpClient(t, shared, gatewayToken)
	u1, u2 := freshID(), freshID()
	s, err := c.Events(ctx, EventsOptions{Users: []uint64{u1, u2}, Members: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := pump(s)
	wait := 10 * time.Second
	first := nextEvent(t, ch, wait, "the first user's initial state", func(ev Event) bool { return true }, nil)
	if !isUser(u1, false, true)(first) || first.User.LastSeenMs != nil {
		t.Fatalf("first event: %s, want the first user offline, initial, never seen (members= follows no member)", describe(first))
	}
	nextEvent(t, ch, wait, "the second user's initial state", isUser(u2, false, true), nil)

	if err := c.Heartbeat(ctx, u1); err != nil {
		t.Fatal(err)
	}
	on := nextEvent(t, ch, wait, "the first user online", isUser(u1, true, false), nil)
	if on.User.LastSeenMs == nil {
		t.Fatalf("online event without last_seen_ms: %s", describe(on))
	}

	if err := c.Heartbeat(ctx, u2); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, wait, "the second user online", isUser(u2, true, false), nil)
	if err := c.Logout(ctx, u2); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, wait, "the second user offline after its logout", isUser(u2, false, false), nil)

	// Offline when the heartbeat is presence.timeout old.
	off := nextEvent(t, ch, sharedPresenceTimeout+wait, "the first user offline after presence.timeout",
		isUser(u1, false, false), nil)
	if off.User.LastSeenMs == nil || *off.User.LastSeenMs != *on.User.LastSeenMs {
		t.Fatalf("offline event %s: last seen should be the heartbeat's", describe(off))
	}

	// Close ends the stream; Err is nil.
	s.Close()
	for range ch {
	}
	if s.Err() != nil {
		t.Fatalf("Err after Close: %v", s.Err())
	}
}

// TestEventsMembersAndErrors: the member filter, and errors a reconnect cannot fix.
func TestEventsMembersAndErrors(t *testing.T) {
	needDaemon(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	c := tcpClient(t, shared, readerToken)
	s, err := c.Events(ctx, EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch := pump(s)
	ev := nextEvent(t, ch, 10*time.Second, "the member's initial state", func(Event) bool { return true }, nil)
	if ev.Type != EventMember || ev.Member.Name != "go-shared" || ev.Member.State != StateAlive || !ev.Member.Initial {
		t.Fatalf("first event: %s", describe(ev))
	}
	// Cancelling the context ends the stream too.
	cancel()
	for range ch {
	}
	if s.Err() != nil {
		t.Fatalf("Err after the context's end: %v", s.Err())
	}

	_, err = c.Events(testCtx(t), EventsOptions{Members: []string{"no good!"}})
	wantAPIError(t, err, 400, "bad_request")
}

// TestEventsResume: the stream survives a daemon restart (same ports and data) and resumes:
// states that did not change while it was away are not delivered again.
func TestEventsResume(t *testing.T) {
	d := startDaemon(t, "restart", map[string]string{"presence.timeout": "1m"})
	ctx := testCtx(t)
	c := newClient(t, Options{URL: "http://" + d.httpAddr, Timeout: 2 * time.Second})
	states := make(chan bool, 64)
	s, err := c.Events(ctx, EventsOptions{
		Users:      []uint64{101, 102, 103},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		OnState: func(up bool) { states <- up },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := pump(s)
	wait := 10 * time.Second
	waitState := func(want bool) {
		t.Helper()
		select {
		case up := <-states:
			if up != want {
				t.Fatalf("OnState(%v), want OnState(%v)", up, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no OnState(%v) within 20 s", want)
		}
	}
	waitState(true)

	member := nextEvent(t, ch, wait, "the member's initial state", func(ev Event) bool { return ev.Type == EventMember }, nil)
	for _, id := range []uint64{101, 102, 103} {
		nextEvent(t, ch, wait, "a user's initial state", isUser(id, false, true), nil)
	}
	if err := c.Heartbeat(ctx, 101); err != nil {
		t.Fatal(err)
	}
	on101 := nextEvent(t, ch, wait, "the first user01 online", isUser(101, true, false), nil)

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	waitState(false)
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	waitState(true)

	// Every event delivered after the reconnect, up to user 102's heartbeat, must be a
	// change: 103 (never seen) and, if the restart kept it online, 101 are not repeated.
	var resumed []Event
	if err := c.Heartbeat(ctx, 102); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, wait, "the first user02 online after the restart", isUser(102, true, false),
		func(ev Event) { resumed = append(resumed, ev) })
	for _, ev := range resumed {
		t.Logf("delivered after the reconnect: %s", describe(ev))
		switch {
		case ev.Type == EventUser && ev.User.User == 103:
			t.Fatalf("the first user03 did not change, yet was delivered again: %s", describe(ev))
		case ev.Type == EventUser && ev.User.User == 101:
			u := ev.User
			if u.Online && u.LastSeenMs != nil && *u.LastSeenMs == *on101.User.LastSeenMs {
				t.Fatalf("the first user01 unchanged, yet delivered again: %s", describe(ev))
			}
		case ev.Type == EventMember && ev.Member.Initial:
			m := ev.Member
			if m.State == member.Member.State && m.Incarnation == member.Member.Incarnation {
				t.Fatalf("member unchanged, yet delivered again: %s", describe(ev))
			}
			if m.Previous == nil || *m.Previous != member.Member.State {
				t.Fatalf("a resumed member event should carry the state last delivered as previous: %s", describe(ev))
			}
		}
	}
	// And the stream goes on as before.
	if err := c.Logout(ctx, 102); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, ch, wait, "the first user02 offline", isUser(102, false, false), nil)
}

// TestEventsDaemonAway: a daemon that is not there is retried, not an error, and OnState
// says so.
func TestEventsDaemonAway(t *testing.T) {
	addr, err := freePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Options{URL: "http://" + addr, Timeout: time.Second})
	states := make(chan bool, 8)
	s, err := c.Events(testCtx(t), EventsOptions{OnState: func(up bool) { states <- up }})
	if err != nil {
		t.Fatalf("Events on an absent daemon: %v, want a stream that retries", err)
	}
	if up := <-states; up {
		t.Fatal("OnState(true) without a daemon")
	}
	done := make(chan bool)
	go func() { done <- s.Next() }()
	s.Close()
	select {
	case got := <-done:
		if got || s.Err() != nil {
			t.Fatalf("Next after Close: %v, Err %v", got, s.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still retrying 10 s after Close")
	}
}
