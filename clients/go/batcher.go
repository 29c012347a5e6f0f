package heartbeatd

import (
	"context"
	"errors"
	"sync"
	"time"
)

// BatcherOptions configure a Batcher.
type BatcherOptions struct {
	// FlushInterval: pending heartbeats are sent this often. Default 250 ms: well inside
	// any presence.timeout, and one request where a gateway would send hundreds.
	FlushInterval time.Duration
	// MaxSize: when this many distinct users are pending, they are sent at once without
	// waiting for the interval. Default 1000. (HeartbeatMany still splits at
	// presence.max_batch.)
	MaxSize int
	// OnFlush, if set, is called after each batch is sent, with its ids, how many the daemon
	// accepted and the error if it failed (the ids are then not retried: a connected user
	// heartbeats again within the next interval). It runs on the Batcher's goroutine, or on
	// the caller's for Flush and Close; it must not call Add.
	OnFlush func(ids []uint64, accepted int, err error)
}

// ErrBatcherClosed is returned by Add after Close.
var ErrBatcherClosed = errors.New("heartbeatd: the Batcher is closed")

// Batcher collects heartbeats and sends them in batches: the gateway pattern. A gateway
// that holds many users' connections calls Add for each heartbeat it receives; the Batcher
// sends the distinct users pending every FlushInterval (or as soon as MaxSize are
// pending) with one POST /v1/users/heartbeat. A user added twice within an interval is sent
// once. Safe for concurrent use.
type Batcher struct {
	c    *Client
	opts BatcherOptions

	mu      sync.Mutex
	pending map[uint64]struct{}
	closed  bool

	kick chan struct{} // MaxSize reached
	quit chan struct{}
	done chan struct{}
}

// NewBatcher starts a Batcher that sends with c. Close it to send what is pending and stop
// its goroutine.
func (c *Client) NewBatcher(opts BatcherOptions) *Batcher {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 250 * time.Millisecond
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 1000
	}
	b := &Batcher{
		c: c, opts: opts,
		pending: map[uint64]struct{}{},
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go b.run()
	return b
}

// Add queues heartbeats for ids. It never blocks on the network.
func (b *Batcher) Add(ids ...uint64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBatcherClosed
	}
	for _, id := range ids {
		b.pending[id] = struct{}{}
	}
	full := len(b.pending) >= b.opts.MaxSize
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default: // a flush is already due
		}
	}
	return nil
}

// Pending is the number of distinct users waiting to be sent.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// take empties the pending set, at most MaxSize ids at a time (so a burst is sent as
// several bounded batches).
func (b *Batcher) take() []uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.pending)
	if n > b.opts.MaxSize {
		n = b.opts.MaxSize
	}
	ids := make([]uint64, 0, n)
	for id := range b.pending {
		if len(ids) == n {
			break
		}
		ids = append(ids, id)
		delete(b.pending, id)
	}
	return ids
}

// Flush sends everything pending now and returns the first error.
func (b *Batcher) Flush(ctx context.Context) error {
	var first error
	for {
		ids := b.take()
		if len(ids) == 0 {
			return first
		}
		if err := b.send(ctx, ids); err != nil && first == nil {
			first = err
		}
	}
}

func (b *Batcher) send(ctx context.Context, ids []uint64) error {
	n, err := b.c.HeartbeatMany(ctx, ids)
	if b.opts.OnFlush != nil {
		b.opts.OnFlush(ids, n, err)
	}
	return err
}

func (b *Batcher) run() {
	defer close(b.done)
	t := time.NewTicker(b.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
		case <-b.kick:
		}
		_ = b.Flush(context.Background()) // errors go to OnFlush; each request is bounded by Options.Timeout
	}
}

// Close stops the Batcher: later Adds fail, a send in progress finishes, and what is
// pending is sent (the wait and the sending bounded by ctx). It returns that last flush's error.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if !already {
		close(b.quit)
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Flush(ctx)
}
