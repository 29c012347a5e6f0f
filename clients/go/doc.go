// Package heartbeatd is a client for the heartbeatd HTTP API (docs/API.md in the
// heartbeatd repository): cluster members, user presence (heartbeats, status, counts,
// history) and the /v1/events change stream, over the daemon's Unix socket or over
// HTTP/HTTPS with bearer tokens.
//
// A Client is safe for concurrent use by many goroutines and keeps its connections alive:
// create one per daemon and share it. Every method takes a context.Context; a method that
// fails because the daemon answered with an error returns a *APIError (use errors.As).
//
// User ids are uint64. They are sent as JSON strings and every response is asked for with
// ids=string, so nothing depends on the precision of a JSON number; responses with ids as
// numbers are decoded too.
//
// Members carry their tags. MembersMatching, MembersPage and EachMember filter and page
// GET /v1/members (MemberFilter, MemberPageRequest); MembersPage also makes conditional
// requests (IfNoneMatch), a 304 being a MemberPage with NotModified set.
//
//	c, err := heartbeatd.New(heartbeatd.Options{URL: "http://127.0.0.1:7700", TokenFile: "/etc/gw/hb-token"})
//	if err != nil { ... }
//	defer c.Close()
//	err = c.Heartbeat(ctx, 42)
//	st, err := c.Status(ctx, 42) // st.Online, st.LastSeenMs
//	on, err := c.Online(ctx, []uint64{42, 7}) // one bit per user on the wire: []bool
package heartbeatd
