package heartbeatd

// The harness: real heartbeatd processes (HEARTBEATD_BIN) on loopback ports and a Unix
// socket in a temporary directory, each with its own config and data directory.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Tokens of the shared daemon's tokens file (docs/API.md, "Tokens and scopes").
const (
	gatewayToken = "gateway-token-0123456789abcdef"
	readerToken  = "reader-token-0123456789abcdef"
	writerToken  = "writer-token-0123456789abcdef"
	opsToken     = "ops-token-0123456789abcdef"
)

const tokensFile = `# NAME   SCOPES                     SECRET
gateway  read,write                 ` + gatewayToken + `
reader   read                       ` + readerToken + `
writer   write                      ` + writerToken + `
ops      read,write,admin,metrics   ` + opsToken + `
`

// sharedPresenceTimeout is the shared daemon's presence.timeout: short, so that the events
// test sees a user go offline quickly, long enough for "heartbeat, then status" to see it
// online on a loaded machine.
const sharedPresenceTimeout = 3 * time.Second

var (
	daemonBin string  // HEARTBEATD_BIN; empty: the tests that need a daemon skip
	shared    *daemon // started by TestMain: tokens, presence.max_batch 5
)

func TestMain(m *testing.M) {
	daemonBin = os.Getenv("HEARTBEATD_BIN")
	if daemonBin == "" {
		fmt.Fprintln(os.Stderr, "HEARTBEATD_BIN is not set: the tests against a real heartbeatd are skipped "+
			"(run clients/go/run_tests PATH/TO/heartbeatd, or set HEARTBEATD_BIN)")
		os.Exit(m.Run())
	}
	var err error
	shared, err = newDaemon("shared", map[string]string{
		"api.tokens_file":    "TOKENS",
		"presence.timeout":   sharedPresenceTimeout.String(),
		"presence.max_batch": "5",
	})
	if err == nil {
		err = shared.start()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the shared heartbeatd: %v\n", err)
		if shared != nil {
			shared.cleanup()
		}
		os.Exit(1)
	}
	code := m.Run()
	stopTwoNodes()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- the shared heartbeatd's log:\n%s", shared.logText())
	}
	shared.cleanup()
	os.Exit(code)
}

var lastID uint64 = 1 << 40

// freshID is a user id no test used before in this process (go test -count=N runs the
// tests again against the same shared daemon).
func freshID() uint64 { return atomic.AddUint64(&lastID, 1) }

// needDaemon skips t when no daemon binary was given.
func needDaemon(t testing.TB) {
	t.Helper()
	if daemonBin == "" {
		t.Skip("HEARTBEATD_BIN is not set: no heartbeatd to test against (clients/go/run_tests PATH/TO/heartbeatd)")
	}
}

type daemon struct {
	name      string
	dir       string
	config    string
	socket    string
	httpAddr  string // 127.0.0.1:PORT
	udpAddr   string
	cmd       *exec.Cmd
	exited    chan struct{}
	exitState error
}

func freePort(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tempDir is a fresh directory short enough for a socket path (107 bytes at most).
func tempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err == nil && len(dir) > 80 {
		os.RemoveAll(dir)
		dir, err = os.MkdirTemp("/tmp", prefix)
	}
	return dir, err
}

// newDaemon writes a config: the keys given (dotted; "TOKENS" as a value is the path of a
// tokens file with the tokens above, mode 0600) over a loopback HTTP listener, a socket
// and a data directory of its own. It does not start the daemon.
func newDaemon(name string, keys map[string]string) (*daemon, error) {
	dir, err := tempDir("hbgo-" + name + "-")
	if err != nil {
		return nil, err
	}
	d := &daemon{name: name, dir: dir, socket: filepath.Join(dir, "api.sock")}
	if d.httpAddr, err = freePort("tcp"); err != nil {
		return d, err
	}
	if d.udpAddr, err = freePort("udp"); err != nil {
		return d, err
	}
	all := map[string]string{
		"node.name":        "go-" + name,
		"node.data_dir":    filepath.Join(dir, "data"),
		"api.unix_socket":  d.socket,
		"api.http":         d.httpAddr,
		"cluster.bind":     d.udpAddr,
		"log.level":        "info",
		"presence.timeout": "30s",
	}
	for k, v := range keys {
		if v == "TOKENS" {
			v = filepath.Join(dir, "tokens")
			if err := os.WriteFile(v, []byte(tokensFile), 0o600); err != nil {
				return d, err
			}
		}
		all[k] = v
	}
	d.config = filepath.Join(dir, "heartbeatd.yaml")
	return d, os.WriteFile(d.config, []byte(renderYAML(all)), 0o600)
}

// renderYAML writes dotted keys as nested YAML mappings; values are written as given
// (paths, addresses, durations and numbers need no quoting).
func renderYAML(keys map[string]string) string {
	tree := map[string]interface{}{}
	for k, v := range keys {
		node := tree
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			child, ok := node[p].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
				node[p] = child
			}
			node = child
		}
		node[parts[len(parts)-1]] = v
	}
	var b strings.Builder
	var write func(m map[string]interface{}, indent string)
	write = func(m map[string]interface{}, indent string) {
		for _, k := range sortedKeys(m) {
			switch v := m[k].(type) {
			case map[string]interface{}:
				fmt.Fprintf(&b, "%s%s:\n", indent, k)
				write(v, indent+"  ")
			case string:
				fmt.Fprintf(&b, "%s%s: %s\n", indent, k, v)
			}
		}
	}
	write(tree, "")
	return b.String()
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func (d *daemon) logPath() string { return filepath.Join(d.dir, "heartbeatd.log") }

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.logPath())
	return string(b)
}

// start runs the daemon and waits (at most 20 s) until it answers GET /v1/health on its
// socket.
func (d *daemon) start() error {
	logf, err := os.OpenFile(d.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(daemonBin, "--config", d.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Killed with the test binary if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", daemonBin, err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() {
		d.exitState = cmd.Wait()
		close(d.exited)
	}()

	c, err := New(Options{SocketPath: d.socket, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("heartbeatd exited at start (%v):\n%s", d.exitState, d.logText())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("heartbeatd not ready within 20 s (last: %v):\n%s", err, d.logText())
		}
		time.Sleep(20 * time.Millisecond) // polling interval of the readiness wait
	}
}

// stop ends the daemon gracefully (SIGTERM: it writes its final snapshot), or kills it
// after 10 s.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.kill()
		return fmt.Errorf("heartbeatd did not stop within 10 s of SIGTERM")
	}
	d.cmd = nil
	return nil
}

func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

func (d *daemon) cleanup() {
	if d.cmd != nil {
		if d.stop() != nil {
			d.kill()
		}
	}
	os.RemoveAll(d.dir)
}

// startDaemon starts a daemon of the test's own, stopped and removed when the test ends
// (its log printed if the test failed).
func startDaemon(t *testing.T, name string, keys map[string]string) *daemon {
	t.Helper()
	needDaemon(t)
	d, err := newDaemon(name, keys)
	if err == nil {
		err = d.start()
	}
	if d != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("heartbeatd %s's log:\n%s", d.name, d.logText())
			}
			d.cleanup()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newClient makes a client, closed when the test ends.
func newClient(t testing.TB, o Options) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tcpClient(t testing.TB, d *daemon, token string) *Client {
	return newClient(t, Options{URL: "http://" + d.httpAddr, Token: token})
}

// testCtx is bounded well inside go test -timeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 20 ms until it holds, failing the test after the deadline.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pump reads a stream on its own goroutine into a channel (closed when the stream ends).
func pump(s *EventStream) <-chan Event {
	ch := make(chan Event, 256)
	go func() {
		defer close(ch)
		for s.Next() {
			ch <- s.Event()
		}
	}()
	return ch
}

// nextEvent waits for an event matching match, failing after within; other events are
// passed to skipped (may be nil).
func nextEvent(t testing.TB, ch <-chan Event, within time.Duration, what string, match func(Event) bool,
	skipped func(Event)) Event {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream ended while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
			if skipped != nil {
				skipped(ev)
			}
		case <-timer.C:
			t.Fatalf("no event within %v: %s", within, what)
		}
	}
}

func describe(ev Event) string {
	var b bytes.Buffer
	switch ev.Type {
	case EventUser:
		u := ev.User
		fmt.Fprintf(&b, "user %d online=%v initial=%v last_seen=", u.User, u.Online, u.Initial)
		if u.LastSeenMs == nil {
			b.WriteString("null")
		} else {
			fmt.Fprint(&b, *u.LastSeenMs)
		}
	case EventMember:
		m := ev.Member
		fmt.Fprintf(&b, "member %s %s incarnation=%d initial=%v", m.Name, m.State, m.Incarnation, m.Initial)
	default:
		fmt.Fprintf(&b, "%s %s", ev.Type, ev.Reason)
	}
	return b.String()
}
