package heartbeatd_test

import (
	"context"
	"errors"
	"log"
	"sync"
	"time"

	heartbeatd "github.com/heartbeatd/heartbeatd/clients/go"
)

func Example() {
	ctx := context.Background()
	c, err := heartbeatd.New(heartbeatd.Options{URL: "http://127.0.0.1:7700", TokenFile: "/etc/gateway/hb-token"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Heartbeat(ctx, 42); err != nil {
		var apiErr *heartbeatd.APIError
		if errors.As(err, &apiErr) && apiErr.Code == "forbidden" {
			log.Fatalf("this token lacks the write scope: %v", apiErr)
		}
		log.Fatal(err)
	}
	st, err := c.Status(ctx, 42)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("user %d online: %v", st.User, st.Online)

	sts, err := c.StatusMany(ctx, []uint64{42, 7, 18446744073709551615})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range sts {
		if s.LastSeenMs != nil {
			log.Printf("user %d last seen %v", s.User, time.UnixMilli(*s.LastSeenMs))
		}
	}

	// Only "online or not", for many users: one bit each on the wire.
	on, err := c.Online(ctx, []uint64{42, 7, 18446744073709551615})
	if err != nil {
		log.Fatal(err) // errors.Is(err, heartbeatd.ErrBadAnswer): the answer was malformed
	}
	log.Printf("online: %v", on)
}

func ExampleNew_tls() {
	c, err := heartbeatd.New(heartbeatd.Options{
		URL: "https://db-3:7700", CAFile: "ca.pem", CertFile: "gw-1.pem", KeyFile: "gw-1.key",
		TokenFile: "/etc/gateway/hb-token", Timeout: 2 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

func ExampleClient_Events() {
	ctx := context.Background()
	c, err := heartbeatd.New(heartbeatd.Options{}) // the local socket
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.Events(ctx, heartbeatd.EventsOptions{
		Users:   []uint64{42, 43},
		OnState: func(connected bool) { log.Printf("connected: %v", connected) },
	})
	if err != nil {
		log.Fatal(err) // 400, 401, 403: reconnecting would not help
	}
	defer s.Close()
	for s.Next() {
		switch ev := s.Event(); ev.Type {
		case heartbeatd.EventUser:
			log.Printf("user %d online=%v", ev.User.User, ev.User.Online)
		case heartbeatd.EventMember:
			log.Printf("member %s is %s", ev.Member.Name, ev.Member.State)
		}
	}
	if err := s.Err(); err != nil {
		log.Print(err)
	}
}

func ExampleBatcher() {
	c, err := heartbeatd.New(heartbeatd.Options{URL: "http://127.0.0.1:7700", TokenFile: "/etc/gateway/hb-token"})
	if err != nil {
		log.Fatal(err)
	}
	b := c.NewBatcher(heartbeatd.BatcherOptions{
		FlushInterval: 250 * time.Millisecond,
		MaxSize:       1000,
		OnFlush: func(ids []uint64, accepted int, err error) {
			if err != nil {
				log.Printf("heartbeats for %d users not sent: %v", len(ids), err)
			}
		},
	})
	defer b.Close(context.Background())

	// On every client ping, in each connection's handler:
	b.Add(42)
}

// The gateway pattern without a Batcher.
func Example_gatewayByHand() {
	ctx := context.Background()
	c, err := heartbeatd.New(heartbeatd.Options{URL: "http://127.0.0.1:7700", TokenFile: "/etc/gateway/hb-token"})
	if err != nil {
		log.Fatal(err)
	}
	pending := map[uint64]struct{}{}
	var mu sync.Mutex
	go func() {
		for range time.Tick(250 * time.Millisecond) {
			mu.Lock()
			ids := make([]uint64, 0, len(pending))
			for id := range pending {
				ids = append(ids, id)
			}
			pending = map[uint64]struct{}{}
			mu.Unlock()
			if len(ids) > 0 {
				if _, err := c.HeartbeatMany(ctx, ids); err != nil {
					log.Print(err)
				}
			}
		}
	}()

	// On every client ping:
	mu.Lock()
	pending[42] = struct{}{}
	mu.Unlock()
}

// Every alive member tagged role=db, 500 a request, and a cheap poll of the dead ones.
func ExampleClient_EachMember() {
	ctx := context.Background()
	c, err := heartbeatd.New(heartbeatd.Options{SocketPath: "/run/heartbeatd/heartbeatd.sock"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	dbs := heartbeatd.MemberFilter{State: []string{heartbeatd.StateAlive}, Tag: []string{"role:db"}}
	err = c.EachMember(ctx, dbs, 500, func(m heartbeatd.Member) error {
		log.Printf("%s at %s, zone %q", m.Name, m.Address, m.Tags["zone"])
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	dead := heartbeatd.MemberPageRequest{MemberFilter: heartbeatd.MemberFilter{State: []string{heartbeatd.StateDead}}}
	page, err := c.MembersPage(ctx, dead)
	if err != nil {
		log.Fatal(err)
	}
	dead.IfNoneMatch = page.ETag
	if later, err := c.MembersPage(ctx, dead); err == nil && !later.NotModified {
		page = later // a member died, came back or was forgotten since
	}
	log.Printf("%d dead members", len(page.Members))
}
