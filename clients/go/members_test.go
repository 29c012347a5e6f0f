package heartbeatd

import (
	"context"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// oddTag is a tag value with every character that means something in a query string.
const oddTag = "x y:&#%+z"

var (
	aTags = map[string]string{"role": "db", "zone": "b"}
	bTags = map[string]string{"role": "web", "note": oddTag}
)

var (
	clusterOnce sync.Once
	clusterA    *daemon
	clusterB    *daemon
	clusterErr  error
)

// twoNodes is a cluster of go-a (role db, zone b) and go-b (role web, note oddTag) joined
// through go-a, started once for the tests of this file (stopTwoNodes, from TestMain,
// stops it); a client of go-a's socket.
func twoNodes(t *testing.T) *Client {
	t.Helper()
	needDaemon(t)
	clusterOnce.Do(func() {
		clusterA, clusterErr = newDaemon("a", map[string]string{"node.tags.role": "db", "node.tags.zone": "b"})
		if clusterErr == nil {
			clusterErr = clusterA.start()
		}
		if clusterErr != nil {
			return
		}
		clusterB, clusterErr = newDaemon("b", map[string]string{
			"node.tags.role": "web", "node.tags.note": `"` + oddTag + `"`,
			"cluster.seeds": `["` + clusterA.udpAddr + `"]`,
		})
		if clusterErr == nil {
			clusterErr = clusterB.start()
		}
	})
	if clusterErr != nil {
		t.Fatalf("starting the two-node cluster: %v", clusterErr)
	}
	c := newClient(t, Options{SocketPath: clusterA.socket})
	waitFor(t, 15*time.Second, "a two-node cluster with tags", func() bool {
		ms, err := c.Members(testCtx(t))
		return err == nil && len(ms) == 2 && ms[0].Name == "go-a" && ms[1].Name == "go-b" &&
			ms[0].State == StateAlive && ms[1].State == StateAlive &&
			reflect.DeepEqual(ms[0].Tags, aTags) && reflect.DeepEqual(ms[1].Tags, bTags)
	})
	return c
}

// stopTwoNodes stops and removes the cluster of twoNodes, if a test started it (TestMain).
func stopTwoNodes() {
	for _, d := range []*daemon{clusterB, clusterA} {
		if d != nil {
			d.cleanup()
		}
	}
}

func names(ms []Member) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestMembersCarryTags(t *testing.T) {
	c := twoNodes(t)
	ctx := testCtx(t)
	for name, want := range map[string]map[string]string{"go-a": aTags, "go-b": bTags} {
		m, err := c.Member(ctx, name)
		if err != nil || !reflect.DeepEqual(m.Tags, want) {
			t.Fatalf("Member(%s): %+v, %v; want tags %v", name, m, err, want)
		}
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Events(ectx, EventsOptions{Members: []string{"go-b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := pump(s)
	ev := nextEvent(t, ch, 10*time.Second, "go-b's initial event", func(e Event) bool { return e.Type == EventMember }, nil)
	if ev.Member.Name != "go-b" || !ev.Member.Initial || !reflect.DeepEqual(ev.Member.Tags, bTags) {
		t.Fatalf("member event: %+v", *ev.Member)
	}
}

func TestMemberFilters(t *testing.T) {
	c := twoNodes(t)
	ctx := testCtx(t)
	both := []string{"go-a", "go-b"}
	for _, tc := range []struct {
		f    MemberFilter
		want []string
	}{
		{MemberFilter{}, both},
		{MemberFilter{State: []string{StateAlive}}, both},
		{MemberFilter{State: []string{StateDead}}, []string{}},
		{MemberFilter{State: []string{StateDead, StateAlive}}, both},
		{MemberFilter{State: []string{"suspect,alive"}}, both},
		{MemberFilter{Name: "go-?"}, both},
		{MemberFilter{Name: "*b"}, []string{"go-b"}},
		{MemberFilter{Tag: []string{"role:db"}}, []string{"go-a"}},
		{MemberFilter{Tag: []string{"role"}}, both},
		{MemberFilter{Tag: []string{"role:db", "zone:b"}}, []string{"go-a"}},
		{MemberFilter{Tag: []string{"role:db", "zone:a"}}, []string{}},
		// Percent-encoding: a space, ':', '&', '#', '%' and '+' reach the daemon intact.
		{MemberFilter{Tag: []string{"note:" + oddTag}}, []string{"go-b"}},
		{MemberFilter{Tag: []string{"note:x y"}}, []string{}},
		{MemberFilter{State: []string{StateAlive}, Name: "go-*", Tag: []string{"role:web"}}, []string{"go-b"}},
	} {
		ms, err := c.MembersMatching(ctx, tc.f)
		if err != nil {
			t.Fatalf("%+v: %v", tc.f, err)
		}
		if got := names(ms); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestMemberQueryEncoding(t *testing.T) {
	q, err := MemberPageRequest{
		MemberFilter: MemberFilter{State: []string{"alive", "dead"}, Name: "go-?", Tag: []string{"note:" + oddTag, "role"}},
		Limit:        5, Cursor: "Z28tYQ",
	}.Query()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(q, " #") || strings.Count(q, "&") != 6 {
		t.Fatalf("query %q", q)
	}
	back, err := url.ParseQuery(q)
	want := url.Values{"state": {"alive", "dead"}, "name": {"go-?"}, "tag": {"note:" + oddTag, "role"},
		"limit": {"5"}, "cursor": {"Z28tYQ"}}
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("%q decodes to %v (%v), want %v", q, back, err, want)
	}
	if q, err := (MemberPageRequest{}).Query(); q != "" || err != nil {
		t.Fatalf("empty request: %q, %v", q, err)
	}
}

func TestMemberPages(t *testing.T) {
	c := twoNodes(t)
	ctx := testCtx(t)
	first, err := c.MembersPage(ctx, MemberPageRequest{Limit: 1})
	if err != nil || !reflect.DeepEqual(names(first.Members), []string{"go-a"}) || first.NextCursor == "" || first.NotModified {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	second, err := c.MembersPage(ctx, MemberPageRequest{Limit: 1, Cursor: first.NextCursor})
	if err != nil || !reflect.DeepEqual(names(second.Members), []string{"go-b"}) || second.NextCursor != "" {
		t.Fatalf("second page: %+v, %v (the last full page already says it is the last)", second, err)
	}
	whole, err := c.MembersPage(ctx, MemberPageRequest{Limit: 2})
	if err != nil || len(whole.Members) != 2 || whole.NextCursor != "" {
		t.Fatalf("limit 2: %+v, %v", whole, err)
	}
	f := MemberFilter{Name: "go-*", Tag: []string{"role"}}
	one, err1 := c.MembersPage(ctx, MemberPageRequest{MemberFilter: f, Limit: 1})
	two, err2 := c.MembersPage(ctx, MemberPageRequest{MemberFilter: f, Limit: 1, Cursor: one.NextCursor})
	if err1 != nil || err2 != nil || !reflect.DeepEqual(names(append(one.Members, two.Members...)), []string{"go-a", "go-b"}) {
		t.Fatalf("filtered pages: %+v %+v, %v %v", one, two, err1, err2)
	}

	var walked []Member
	if err := c.EachMember(ctx, MemberFilter{}, 1, func(m Member) error {
		walked = append(walked, m)
		return nil
	}); err != nil || !reflect.DeepEqual(names(walked), []string{"go-a", "go-b"}) {
		t.Fatalf("EachMember: %v, %v", names(walked), err)
	}
	if !reflect.DeepEqual(walked[1].Tags, bTags) {
		t.Fatalf("EachMember's go-b: %+v", walked[1])
	}
	stop := errors.New("enough")
	calls := 0
	if err := c.EachMember(ctx, MemberFilter{}, 1, func(Member) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("EachMember stopping: %v after %d calls", err, calls)
	}
	walked = nil
	if err := c.EachMember(ctx, MemberFilter{State: []string{StateAlive}, Tag: []string{"role:web"}}, 0, func(m Member) error {
		walked = append(walked, m)
		return nil
	}); err != nil || !reflect.DeepEqual(names(walked), []string{"go-b"}) {
		t.Fatalf("EachMember filtered: %v, %v", names(walked), err)
	}
}

func TestMemberETagAndNotModified(t *testing.T) {
	c := twoNodes(t)
	ctx := testCtx(t)
	// state=dead is a quiet answer (no last_seen_ms moving): its tag stays put.
	dead := MemberFilter{State: []string{StateDead}}
	page, err := c.MembersPage(ctx, MemberPageRequest{MemberFilter: dead})
	if err != nil || !strings.HasPrefix(page.ETag, `"`) || page.NotModified {
		t.Fatalf("first: %+v, %v", page, err)
	}
	again, err := c.MembersPage(ctx, MemberPageRequest{MemberFilter: dead, IfNoneMatch: page.ETag})
	if err != nil || !again.NotModified || again.ETag != page.ETag || len(again.Members) != 0 || again.NextCursor != "" {
		t.Fatalf("with If-None-Match: %+v, %v", again, err)
	}
	stale, err := c.MembersPage(ctx, MemberPageRequest{MemberFilter: dead, IfNoneMatch: `"0123456789abcdef"`})
	if err != nil || stale.NotModified || stale.ETag != page.ETag {
		t.Fatalf("stale tag: %+v, %v", stale, err)
	}
	other, err := c.MembersPage(ctx, MemberPageRequest{MemberFilter: dead, Limit: 1, IfNoneMatch: page.ETag})
	if err != nil || other.NotModified || other.ETag == page.ETag {
		t.Fatalf("another query: %+v, %v", other, err)
	}
	// The kept-alive connection goes on after a body-less 304, over TCP too.
	if ms, err := c.MembersMatching(ctx, MemberFilter{Name: "go-a"}); err != nil || len(ms) != 1 {
		t.Fatalf("after a 304: %v, %v", ms, err)
	}
	tcp := newClient(t, Options{URL: "http://" + clusterA.httpAddr})
	if p, err := tcp.MembersPage(ctx, MemberPageRequest{MemberFilter: dead, IfNoneMatch: page.ETag}); err != nil || !p.NotModified {
		t.Fatalf("over TCP: %+v, %v", p, err)
	}
}

func TestBadMemberFiltersAreRefusedBeforeSending(t *testing.T) {
	c, err := New(Options{SocketPath: "/nonexistent/heartbeatd.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		r     MemberPageRequest
		param string
	}{
		{MemberPageRequest{MemberFilter: MemberFilter{State: []string{"zombie"}}}, "state"},
		{MemberPageRequest{MemberFilter: MemberFilter{State: []string{"alive,"}}}, "state"},
		{MemberPageRequest{MemberFilter: MemberFilter{Name: "a b"}}, "name"},
		{MemberPageRequest{MemberFilter: MemberFilter{Name: strings.Repeat("x", 257)}}, "name"},
		{MemberPageRequest{MemberFilter: MemberFilter{Tag: []string{"bad key:x"}}}, "tag"},
		{MemberPageRequest{MemberFilter: MemberFilter{Tag: []string{":x"}}}, "tag"},
		{MemberPageRequest{MemberFilter: MemberFilter{Tag: []string{"k:\u00e9"}}}, "tag"},
		{MemberPageRequest{MemberFilter: MemberFilter{Tag: []string{"k:" + strings.Repeat("v", 129)}}}, "tag"},
		{MemberPageRequest{Limit: -1}, "limit"},
		{MemberPageRequest{Limit: MaxMemberPage + 1}, "limit"},
	} {
		_, err := c.MembersPage(ctx, tc.r)
		if !errors.Is(err, ErrBadFilter) || !strings.Contains(err.Error(), ": "+tc.param+": ") {
			t.Errorf("%+v: %v; want ErrBadFilter naming %s", tc.r, err, tc.param)
		}
	}
	if err := c.EachMember(ctx, MemberFilter{}, -1, func(Member) error { return nil }); !errors.Is(err, ErrBadFilter) {
		t.Errorf("EachMember with a page size of -1: %v", err)
	}
}

func TestTheDaemonsBadRequestIsAnAPIError(t *testing.T) {
	c := twoNodes(t)
	_, err := c.MembersPage(testCtx(t), MemberPageRequest{Limit: 1, Cursor: "not a cursor!"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "bad_request" || !strings.HasPrefix(ae.Message, "cursor:") {
		t.Fatalf("bad cursor: %v", err)
	}
}
