package heartbeatd

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"
)

type flushed struct {
	ids      []uint64
	accepted int
	err      error
}

func recvFlush(t *testing.T, ch <-chan flushed, within time.Duration, what string) flushed {
	t.Helper()
	select {
	case f := <-ch:
		sort.Slice(f.ids, func(i, j int) bool { return f.ids[i] < f.ids[j] })
		return f
	case <-time.After(within):
		t.Fatalf("no flush within %v: %s", within, what)
		return flushed{}
	}
}

// TestBatcher: heartbeats are sent when MaxSize are pending, every FlushInterval, and at
// Close; duplicates within a batch are sent once.
func TestBatcher(t *testing.T) {
	needDaemon(t)
	ctx := testCtx(t)
	c := tcpClient(t, shared, gatewayToken)
	ch := make(chan flushed, 16)
	onFlush := func(ids []uint64, n int, err error) { ch <- flushed{append([]uint64(nil), ids...), n, err} }

	// An interval that never comes: only MaxSize and Close send.
	b := c.NewBatcher(BatcherOptions{FlushInterval: time.Hour, MaxSize: 4, OnFlush: onFlush})
	if err := b.Add(6001, 6002, 6001, 6003); err != nil {
		t.Fatal(err)
	}
	if b.Pending() != 3 {
		t.Fatalf("pending %d, want 3 distinct", b.Pending())
	}
	select {
	case f := <-ch:
		t.Fatalf("flushed before MaxSize or the interval: %+v", f)
	default:
	}
	b.Add(6004)
	f := recvFlush(t, ch, 10*time.Second, "MaxSize reached")
	if f.err != nil || f.accepted != 4 || len(f.ids) != 4 || f.ids[0] != 6001 || f.ids[3] != 6004 {
		t.Fatalf("flush at MaxSize: %+v", f)
	}
	sts, err := c.StatusMany(ctx, []uint64{6001, 6004})
	if err != nil || sts[0].LastSeenMs == nil || sts[1].LastSeenMs == nil {
		t.Fatalf("after the flush: %+v, %v", sts, err)
	}

	// A burst larger than MaxSize goes as bounded batches; the rest at Close.
	b.Add(6101, 6102, 6103, 6104, 6105, 6106, 6107, 6108, 6109)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	total := 0
	for total < 9 {
		f := recvFlush(t, ch, 10*time.Second, "the burst")
		if f.err != nil || len(f.ids) > 4 || f.accepted != len(f.ids) {
			t.Fatalf("burst flush: %+v", f)
		}
		total += len(f.ids)
	}
	if total != 9 || b.Pending() != 0 {
		t.Fatalf("sent %d of 9, %d pending", total, b.Pending())
	}
	if err := b.Add(1); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("Add after Close: %v", err)
	}

	// The interval sends what is pending.
	b2 := c.NewBatcher(BatcherOptions{FlushInterval: 50 * time.Millisecond, OnFlush: onFlush})
	defer b2.Close(context.Background())
	b2.Add(6201, 6202)
	f = recvFlush(t, ch, 10*time.Second, "the interval")
	if f.err != nil || f.accepted != 2 || len(f.ids) != 2 {
		t.Fatalf("flush at the interval: %+v", f)
	}
}

// TestBatcherErrors: a refused batch is reported to OnFlush and by Flush.
func TestBatcherErrors(t *testing.T) {
	needDaemon(t)
	c := tcpClient(t, shared, readerToken) // may not write
	ch := make(chan flushed, 4)
	b := c.NewBatcher(BatcherOptions{FlushInterval: time.Hour, OnFlush: func(ids []uint64, n int, err error) {
		ch <- flushed{ids, n, err}
	}})
	b.Add(7001)
	err := b.Flush(testCtx(t))
	wantAPIError(t, err, 403, "forbidden")
	f := recvFlush(t, ch, time.Second, "the refused flush")
	if f.err == nil || f.accepted != 0 || len(f.ids) != 1 {
		t.Fatalf("OnFlush: %+v", f)
	}
	b.Close(testCtx(t))
}
