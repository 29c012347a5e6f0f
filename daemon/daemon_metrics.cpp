// GET /metrics: every family but the API's own (transport/api/http_router.cpp writes those).
// Names follow Prometheus conventions: heartbeatd_ prefix, base units, _total for counters.
#include <array>
#include <utility>

#include "daemon/daemon.h"
#include "heartbeatd/version.h"
#include "membership/member.h"
#include "transport/cluster/datagram_seal.h"

namespace heartbeatd {

void Daemon::write_metrics(MetricsWriter& w) {
  using membership::MemberState;
  const auto now = clock_.now();

  w.family("heartbeatd_build_info", "gauge", "Always 1; the version in a label.");
  w.sample("heartbeatd_build_info", {{"version", kVersion}}, std::uint64_t{1});
  w.gauge("heartbeatd_uptime_seconds", "Time since this daemon started.",
          std::chrono::duration<double>(now - started_).count());
  write_process_metrics(w);

  // Members.
  std::array<std::uint64_t, 4> by_state{};
  for (const auto& m : cluster_->members()) ++by_state[static_cast<std::size_t>(m.state)];
  w.family("heartbeatd_members", "gauge", "Members known to this node, itself included, by state.");
  for (auto st : {MemberState::alive, MemberState::suspect, MemberState::dead, MemberState::left}) {
    w.sample("heartbeatd_members", {{"state", membership::to_string(st)}},
             by_state[static_cast<std::size_t>(st)]);
  }
  const auto c = cluster_->counters();
  w.gauge("heartbeatd_incarnation", "This node's incarnation number.",
          static_cast<double>(cluster_->incarnation()));
  w.gauge("heartbeatd_local_health_score",
          "Lifeguard local health: 0 is healthy, up to 8 when this node misses its own "
          "deadlines (probing slows down accordingly).",
          c.local_health);

  // Heartbeats in: users' through the API; membership messages are counted apart, below.
  w.counter("heartbeatd_user_heartbeats_received_total",
            "User heartbeats accepted through the API (a batch counts each user).",
            presence_counters_->heartbeats.load(std::memory_order_relaxed));
  w.counter("heartbeatd_user_logouts_total", "Explicit offline requests (DELETE /v1/users/{id}).",
            presence_counters_->logouts.load(std::memory_order_relaxed));

  // Datagrams and the protocol.
  w.counter("heartbeatd_datagrams_sent_total", "UDP datagrams sent to other members.",
            c.datagrams_sent);
  w.counter("heartbeatd_datagrams_received_total", "UDP datagrams received, before any check.",
            c.datagrams_received);
  w.counter("heartbeatd_datagram_send_errors_total", "UDP sends that failed.", c.send_errors);
  w.counter("heartbeatd_membership_messages_received_total",
            "Membership messages accepted from other members (opened, decoded, fresh).",
            c.protocol.messages_received);
  w.counter("heartbeatd_membership_messages_sent_total",
            "Membership messages this node sent (heartbeats, probes, gossip, syncs).",
            c.protocol.messages_sent);
  w.family("heartbeatd_datagrams_dropped_total", "counter",
           "Received datagrams dropped, by reason: malformed (bad envelope or body), "
           "unknown_version, foreign_cluster (another cluster.name), bad_tag (sealed, and no "
           "key of the ring authenticates it), unsealed (plain while cluster.require_sealed).");
  for (std::size_t i = 0; i < transport::kDropReasonCount; ++i) {
    w.sample("heartbeatd_datagrams_dropped_total",
             {{"reason", transport::to_string(static_cast<transport::DropReason>(i))}},
             c.dropped[i]);
  }
  const auto keys = cluster_->key_usage();
  w.family("heartbeatd_cluster_key_members", "gauge",
           "Live members (this node included) by the key their last datagram was sealed with: "
           "a key's fingerprint, plaintext, or unknown (not heard from directly, or with a key "
           "since removed).");
  for (const auto& k : keys.keys) {
    w.sample("heartbeatd_cluster_key_members", {{"key", k.fingerprint}}, std::uint64_t{k.members});
  }
  w.sample("heartbeatd_cluster_key_members", {{"key", "plaintext"}},
           std::uint64_t{keys.plaintext_members});
  w.sample("heartbeatd_cluster_key_members", {{"key", "unknown"}},
           std::uint64_t{keys.unknown_members});
  w.counter("heartbeatd_suspicions_raised_total", "Members this node suspected.",
            c.protocol.suspicions_raised);
  w.counter("heartbeatd_suspicions_refuted_total",
            "Suspicions about this node that it refuted (by a higher incarnation).",
            c.protocol.suspicions_refuted);
  w.counter("heartbeatd_deaths_declared_total", "Members this node declared dead.",
            c.protocol.deaths_declared);
  w.counter("heartbeatd_force_leaves_total",
            "Members this node marked left, or forgot, on an operator's force-leave.",
            c.protocol.force_leaves);
  w.counter("heartbeatd_probes_total", "Silent members this node probed directly.",
            c.protocol.probes);
  w.counter("heartbeatd_probes_failed_total",
            "Probes that no ack, direct or through a helper, answered in time (each raised a "
            "suspicion).",
            c.protocol.probes_failed);
  w.counter("heartbeatd_indirect_probes_total",
            "Ping requests this node's probes sent to helpers (membership.indirect_checks).",
            c.protocol.indirect_probes);
  w.counter("heartbeatd_indirect_probes_served_total",
            "Ping requests of other members this node served as a helper.",
            c.protocol.probes_forwarded);
  w.counter("heartbeatd_name_conflicts_total",
            "Claims of a live member's name (or this node's) from another address.",
            c.protocol.name_conflicts);
  w.counter("heartbeatd_local_pauses_total",
            "Times this node found it had not run for a while (stopped, starved): it accused "
            "no one for that time.",
            c.protocol.pauses);
  w.family("heartbeatd_member_detection_seconds", "histogram",
           "How long members took to be found dead, as this node saw it, from: suspect (the "
           "suspicion) or last_heard (the member's last datagram to this node).");
  c.suspect_to_dead.write(w, "heartbeatd_member_detection_seconds", {{"from", "suspect"}});
  c.silent_to_dead.write(w, "heartbeatd_member_detection_seconds", {{"from", "last_heard"}});
  w.family("heartbeatd_membership_refused_total", "counter",
           "Membership messages or news refused by the protocol's trust rules, by reason: "
           "replay (a counter already seen, or an earlier boot), misdirected (meant for "
           "another member), implausible (an incarnation jump, or an accuser who is no live "
           "member), unverified (a reply or a newcomer withheld from an address that has not "
           "proved it receives there), newcomer_rate (too many new members from one source), "
           "max_members (membership.max_members reached), other_cluster (a stranger's "
           "datagram from another cluster of the same name).");
  const std::pair<const char*, std::uint64_t> refused[] = {
      {"replay", c.protocol.replays},
      {"misdirected", c.protocol.misdirected},
      {"implausible", c.protocol.implausible},
      {"unverified", c.protocol.unverified_dropped},
      {"newcomer_rate", c.protocol.newcomers_limited},
      {"max_members", c.protocol.members_over_limit},
      {"other_cluster", c.protocol.other_cluster},
  };
  for (const auto& [reason, n] : refused) {
    w.sample("heartbeatd_membership_refused_total", {{"reason", reason}}, n);
  }

  // Users: the presence store's families.
  presence_->write_metrics(w);

  // Snapshots.
  const auto st = snapshotter_->stats();
  w.counter("heartbeatd_snapshots_total", "Presence snapshots written since start.", st.snapshots);
  w.counter("heartbeatd_snapshot_failures_total", "Presence snapshots that failed since start.",
            st.failures);
  w.gauge("heartbeatd_snapshot_duration_seconds", "Time the last snapshot took.",
          std::chrono::duration<double>(st.duration).count());
  w.gauge("heartbeatd_snapshot_size_bytes", "Size of the last snapshot's user records.",
          static_cast<double>(st.bytes));
  w.gauge("heartbeatd_snapshot_users", "Users in the last snapshot.",
          static_cast<double>(st.users));
  w.gauge("heartbeatd_snapshot_timestamp_seconds",
          "Unix time of the last complete snapshot (0: none since start).",
          st.last_ms ? static_cast<double>(*st.last_ms) / 1000 : 0.0);
  w.gauge("heartbeatd_data_dir_size_bytes", "Size of the database in node.data_dir.",
          static_cast<double>(st.disk_bytes));

  // API, events, hooks.
  w.gauge("heartbeatd_api_connections", "Open API connections (TCP and Unix socket).",
          static_cast<double>(server_.connections()));
  const auto ev = events_->stats();
  w.gauge("heartbeatd_event_subscribers", "Open /v1/events streams.",
          static_cast<double>(ev.subscribers));
  w.gauge("heartbeatd_event_watched_users",
          "Distinct users whose transitions are followed (subscriptions and hooks.users).",
          static_cast<double>(ev.watched_users));
  w.counter("heartbeatd_event_subscribers_dropped_total",
            "Event streams cut off because they fell more than events.max_queue_bytes behind.",
            ev.subscribers_dropped);
  w.family("heartbeatd_events_total", "counter", "Events published, by kind.");
  w.sample("heartbeatd_events_total", {{"kind", "member"}}, ev.member_events);
  w.sample("heartbeatd_events_total", {{"kind", "user"}}, ev.user_events);
  const HookStats hook_stats[2] = {hooks_->stats(HookRunner::kMember),
                                   hooks_->stats(HookRunner::kUser)};
  constexpr const char* kHookNames[2] = {"on_member_change", "on_user_change"};
  w.family("heartbeatd_hook_runs_total", "counter",
           "Hook executions by hook and result: ok (exit 0), failed (non-zero exit, signal, "
           "could not start), timeout (killed at hooks.timeout).");
  for (int k = 0; k < 2; ++k) {
    w.sample("heartbeatd_hook_runs_total", {{"hook", kHookNames[k]}, {"result", "ok"}},
             hook_stats[k].succeeded);
    w.sample("heartbeatd_hook_runs_total", {{"hook", kHookNames[k]}, {"result", "failed"}},
             hook_stats[k].failed);
    w.sample("heartbeatd_hook_runs_total", {{"hook", kHookNames[k]}, {"result", "timeout"}},
             hook_stats[k].timed_out);
  }
  w.gauge("heartbeatd_hook_queue_depth",
          "Events waiting for a hook worker, both hooks together (at most hooks.max_queue).",
          static_cast<double>(hooks_->queued()));
  w.family("heartbeatd_hook_events_dropped_total", "counter",
           "Events whose hook did not run: queue full (hooks.max_queue), or heartbeatd stopping.");
  for (int k = 0; k < 2; ++k) {
    w.sample("heartbeatd_hook_events_dropped_total", {{"hook", kHookNames[k]}},
             hook_stats[k].dropped);
  }
}

}  // namespace heartbeatd
