package heartbeatd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Client. Give URL for TCP (HTTP or HTTPS) or SocketPath for the Unix
// socket; with neither, the default socket heartbeatctl uses is dialled.
type Options struct {
	// URL of the TCP API: "http://127.0.0.1:7700" or "https://db-3:7700" (a bare
	// "host:port" means http). A path prefix is kept (for a proxy that mounts the API).
	URL string
	// SocketPath is the Unix socket (api.unix_socket). The socket needs no token: the
	// daemon knows the caller's uid and gid.
	SocketPath string

	// Token is sent as "Authorization: Bearer TOKEN" (docs/API.md, "Tokens and scopes").
	// Empty: the first line of TokenFile, else $HEARTBEATD_TOKEN, else no token.
	Token string
	// TokenFile holds the token on its first line. A file others may read or write is
	// refused, as heartbeatctl refuses it.
	TokenFile string

	// CAFile is a PEM file of the CA(s) that issued the daemon's certificate (https only).
	// Empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are this client's certificate and key, for mutual TLS
	// (api.tls.client_ca_file). Both or neither.
	CertFile string
	KeyFile  string

	// Timeout bounds each request (connecting, sending, the whole answer); 0 means 10 s,
	// negative means none (the context alone). An event stream is bounded only by its
	// context, its connection phase by Timeout.
	Timeout time.Duration

	// MaxBatch is the largest batch sent in one request. 0: presence.max_batch as
	// GET /v1/health reports it, read once and cached (10000 if the daemon does not say).
	MaxBatch int

	// MaxConns bounds the connections open to the daemon at once, event streams included;
	// more concurrent calls wait for a free one. 0 means 32, below the daemon's
	// api.max_connections_per_client (64), so a burst queues instead of being refused.
	MaxConns int

	// DialContext, if set, opens the connections (network "tcp" with the URL's
	// host:port, or "unix" with SocketPath); for tests and custom networking.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)

	// UserAgent is sent with every request; empty: "heartbeatd-go".
	UserAgent string
}

// Client calls one heartbeatd. It is safe for concurrent use by many goroutines and keeps
// its connections alive between calls (idle ones are closed after 50 s, before the
// daemon's api.idle_timeout of 1 minute).
type Client struct {
	base      string // scheme://host[/prefix], no trailing slash
	auth      string // "Bearer ..." or ""
	userAgent string
	timeout   time.Duration
	transport *http.Transport
	http      *http.Client

	fixedBatch int
	batchMu    sync.Mutex
	maxBatch   int // cached presence.max_batch; 0 until read
}

// DefaultMaxBatch is the batch size used when the daemon does not report presence.max_batch.
const DefaultMaxBatch = 10000

const defaultTimeout = 10 * time.Second

// New makes a Client. It opens no connection: errors are about the options (a bad URL,
// an unreadable token, CA or key file).
func New(o Options) (*Client, error) {
	c := &Client{userAgent: o.UserAgent, timeout: o.Timeout, fixedBatch: o.MaxBatch}
	if c.userAgent == "" {
		c.userAgent = "heartbeatd-go"
	}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	if o.MaxBatch < 0 {
		return nil, fmt.Errorf("heartbeatd: Options.MaxBatch %d: must be positive (0: ask the daemon)", o.MaxBatch)
	}
	maxConns := o.MaxConns
	if maxConns == 0 {
		maxConns = 32
	} else if maxConns < 0 {
		return nil, fmt.Errorf("heartbeatd: Options.MaxConns %d: must be positive", maxConns)
	}

	token, err := resolveToken(o)
	if err != nil {
		return nil, err
	}
	if token != "" {
		c.auth = "Bearer " + token
	}

	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	if c.timeout < 0 {
		dialer.Timeout = 0
	}
	dial := o.DialContext
	if dial == nil {
		dial = dialer.DialContext
	}
	tr := &http.Transport{
		Proxy:               nil, // a daemon is local or on the LAN: never through a proxy
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     50 * time.Second,
		DisableCompression:  true,
	}
	if c.timeout > 0 {
		tr.TLSHandshakeTimeout = c.timeout
		tr.ResponseHeaderTimeout = c.timeout
	}

	switch {
	case o.URL != "" && o.SocketPath != "":
		return nil, errors.New("heartbeatd: set Options.URL or Options.SocketPath, not both")
	case o.URL != "":
		raw := o.URL
		if !strings.Contains(raw, "://") {
			raw = "http://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("heartbeatd: Options.URL %q: %v", o.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("heartbeatd: Options.URL %q: the scheme must be http or https", o.URL)
		}
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("heartbeatd: Options.URL %q: want scheme://host:port with no user, query or fragment", o.URL)
		}
		if u.Scheme == "http" && (o.CAFile != "" || o.CertFile != "" || o.KeyFile != "") {
			return nil, fmt.Errorf("heartbeatd: Options.CAFile, CertFile and KeyFile need an https URL, not %q", o.URL)
		}
		if u.Scheme == "https" {
			tc, err := tlsConfig(o)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = tc
		}
		tr.DialContext = dial
		c.base = u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	default:
		if o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" {
			return nil, errors.New("heartbeatd: Options.CAFile, CertFile and KeyFile need an https URL; the Unix socket is plain")
		}
		path := o.SocketPath
		if path == "" {
			path = DefaultSocketPath()
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, "unix", path)
		}
		// The host is not used on a socket; "localhost" keeps the Host header valid.
		c.base = "http://localhost"
	}
	c.transport = tr
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// DefaultSocketPath is the socket heartbeatctl uses by default: $HEARTBEATD_SOCKET, else
// /run/heartbeatd/heartbeatd.sock if it exists (the systemd unit), else
// $XDG_RUNTIME_DIR/heartbeatd.sock, else /tmp/heartbeatd-UID/heartbeatd.sock (or
// /tmp/heartbeatd-UID.sock if that is longer than the kernel's 107 bytes).
func DefaultSocketPath() string {
	if p := os.Getenv("HEARTBEATD_SOCKET"); p != "" {
		return p
	}
	const systemd = "/run/heartbeatd/heartbeatd.sock"
	if _, err := os.Stat(systemd); err == nil {
		return systemd
	}
	uid := strconv.Itoa(os.Getuid())
	path := "/tmp/heartbeatd-" + uid + "/heartbeatd.sock"
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		path = xdg + "/heartbeatd.sock"
	}
	if len(path) > 107 {
		path = "/tmp/heartbeatd-" + uid + ".sock"
	}
	return path
}

// Close closes the idle connections. The Client stays usable (a later call reconnects).
func (c *Client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("heartbeatd: Options.CAFile: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("heartbeatd: Options.CAFile %s: no PEM certificate in it", o.CAFile)
		}
		tc.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("heartbeatd: Options.CertFile and Options.KeyFile go together: set both or neither")
	}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("heartbeatd: Options.CertFile %s, KeyFile %s: %v", o.CertFile, o.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// isToken68 reports whether s can be a bearer token: letters, digits, - . _ ~ + /, then
// optional trailing '='.
func isToken68(s string) bool {
	i := 0
	for i < len(s) {
		b := s[i]
		if (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
			b == '-' || b == '.' || b == '_' || b == '~' || b == '+' || b == '/' {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for i < len(s) && s[i] == '=' {
		i++
	}
	return i == len(s)
}

const tokenChars = "letters, digits, '-', '.', '_', '~', '+', '/', trailing '='"

// resolveToken picks the token: Options.Token, else TokenFile's first line, else
// $HEARTBEATD_TOKEN. Messages never quote the token.
func resolveToken(o Options) (string, error) {
	if o.Token != "" {
		if !isToken68(o.Token) {
			return "", fmt.Errorf("heartbeatd: Options.Token is not a token (%s)", tokenChars)
		}
		return o.Token, nil
	}
	if o.TokenFile != "" {
		return readTokenFile(o.TokenFile)
	}
	if v := os.Getenv("HEARTBEATD_TOKEN"); v != "" {
		if !isToken68(v) {
			return "", fmt.Errorf("heartbeatd: HEARTBEATD_TOKEN is not a token (%s)", tokenChars)
		}
		return v, nil
	}
	return "", nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile: %v", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o006 != 0 {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile %s: readable or writable by others (mode %04o); "+
			"it holds an API token: chmod o-rwx %s", path, perm, path)
	}
	buf := make([]byte, 8192)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile %s: %v", path, err)
	}
	line := string(buf[:n])
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimRight(line, "\r \t")
	if line == "" {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile %s: the first line is empty", path)
	}
	if !isToken68(line) {
		return "", fmt.Errorf("heartbeatd: Options.TokenFile %s: the first line is not a token (%s)", path, tokenChars)
	}
	return line, nil
}

// APIError is an error answer of the daemon (docs/API.md, "Errors"). Get it with
// errors.As(err, &apiErr).
type APIError struct {
	Status     int           // the HTTP status, e.g. 403
	Code       string        // the body's "error", e.g. "forbidden"
	Message    string        // the body's "message"
	RetryAfter time.Duration // from Retry-After (429, 503); 0 when absent
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = strings.ToLower(http.StatusText(e.Status))
	}
	if e.Message == "" {
		return fmt.Sprintf("heartbeatd: %d %s", e.Status, code)
	}
	return fmt.Sprintf("heartbeatd: %d %s: %s", e.Status, code, e.Message)
}

// Temporary reports whether the same request may succeed later: 429, 503 and 504.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable ||
		e.Status == http.StatusGatewayTimeout
}

func parseRetryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// apiError reads an error answer's body into an *APIError.
func apiError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	var wire struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error != "" {
		e.Code, e.Message = wire.Error, wire.Message
	} else {
		// Not the daemon's error body (a proxy's page?): keep a bounded, printable excerpt.
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		e.Message = msg
	}
	return e
}

// request builds a request to path (which starts with "/") with the client's headers.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("heartbeatd: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	req.Header.Set("User-Agent", c.userAgent)
	return req, nil
}

// maxAnswer bounds an answer's body: a status batch of presence.max_batch users at the
// largest is a few MiB.
const maxAnswer = 256 << 20

// do sends one request and decodes a 2xx answer's JSON into out (if not nil). idempotent
// requests (every route of the API: a heartbeat sets "last seen" to now, a logout sets
// offline) may be sent again by the transport when a kept-alive connection turns out to
// have been closed by the daemon just before.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, out interface{}) error {
	_, data, err := c.exchange(ctx, method, path, query, body, "application/json")
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("heartbeatd: %s %s: unexpected answer: %v", method, path, err)
	}
	return nil
}

// exchange sends one request (as do) and returns a 2xx answer: its status line and headers
// (the body already read into data) and its body. An error answer is an *APIError.
func (c *Client) exchange(ctx context.Context, method, path string, query url.Values, body []byte,
	accept string) (*http.Response, []byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", accept)
	if method != http.MethodGet {
		// A nil value marks the request idempotent for net/http without sending the header.
		req.Header["X-Idempotency-Key"] = nil
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("heartbeatd: %s %s: %w", method, path, unwrapURLError(err))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("heartbeatd: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, apiError(resp, data)
	}
	return resp, data, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the URL (on a socket
// the meaningless http://localhost), keeping its cause for errors.Is/As.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
