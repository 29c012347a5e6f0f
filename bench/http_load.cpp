// http_load: a closed-loop HTTP/1.1 load generator for loopback TCP and Unix sockets, for
// bench/presence_vs_redis. wrk cannot talk to a Unix socket, and its percentiles are not
// usable under pipelining; this tool does both, and nothing else.
//
//   http_load TARGET [--connections N (50)] [--depth D (1)] [--duration SECONDS (5)]
//             [--method M (GET)] [--path P (/)] [--body B] [--header 'Name: value']...
//             [--ids N (1000000)] [--seed S]
//
// TARGET is HOST:PORT (an IPv4 literal) or unix:PATH. Each of the N connections keeps D
// requests in flight (D = 1: no pipelining): each answer sends the next request. Requests
// are fixed bytes made up front from the arguments; "{id}" in the path or the body becomes a
// uniform random id in [0, --ids), 4096 such requests rotated over the run. Answers are
// counted by parsing the status line and Content-Length (no body for 1xx, 204, 304);
// chunked answers are not supported and count as errors, as do closed connections (which
// are reopened). Latency runs from queuing a request for writing to the end of its answer.
// Single-threaded (one epoll loop), so it uses at most one core.
//
// Prints one line (microseconds):
//   HTTPLOAD requests=N seconds=S rps=R p50=.. p90=.. p99=.. p999=.. max=.. non2xx=N errors=N
// requests and rps count every complete answer; non2xx those outside 200-299.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string target;
  int connections = 50;
  int depth = 1;
  double duration_s = 5;
  std::string method = "GET";
  std::string path = "/";
  std::string body;
  std::vector<std::string> headers;
  std::uint64_t ids = 1000000;
  std::uint64_t seed = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "http_load: %s\nusage: http_load HOST:PORT|unix:PATH [--connections N] [--depth D]"
               " [--duration S] [--method M] [--path P] [--body B] [--header 'K: V']... [--ids N]"
               " [--seed S]\n",
               why.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!a.starts_with("--")) {
      if (!o.target.empty()) usage("two targets: " + o.target + " and " + std::string(a));
      o.target = a;
      continue;
    }
    if (i + 1 >= argc) usage(std::string(a) + " needs a value");
    const std::string v = argv[++i];
    try {
      if (a == "--connections") o.connections = std::stoi(v);
      else if (a == "--depth") o.depth = std::stoi(v);
      else if (a == "--duration") o.duration_s = std::stod(v);
      else if (a == "--method") o.method = v;
      else if (a == "--path") o.path = v;
      else if (a == "--body") o.body = v;
      else if (a == "--header") o.headers.push_back(v);
      else if (a == "--ids") o.ids = std::stoull(v);
      else if (a == "--seed") o.seed = std::stoull(v);
      else usage("unknown option " + std::string(a));
    } catch (const std::logic_error&) {
      usage("bad value for " + std::string(a) + ": " + v);
    }
  }
  if (o.target.empty()) usage("no target");
  if (o.connections < 1 || o.depth < 1 || o.duration_s <= 0 || o.ids < 1)
    usage("--connections, --depth, --duration and --ids must be positive");
  return o;
}

std::string replace_ids(std::string s, std::mt19937_64& rng, std::uint64_t ids) {
  for (auto at = s.find("{id}"); at != std::string::npos; at = s.find("{id}", at)) {
    const std::string id = std::to_string(rng() % ids);
    s.replace(at, 4, id);
    at += id.size();
  }
  return s;
}

std::vector<std::string> make_requests(const Options& o) {
  std::mt19937_64 rng(o.seed ? o.seed : std::random_device{}());
  const bool random = o.path.find("{id}") != std::string::npos || o.body.find("{id}") != std::string::npos;
  std::vector<std::string> out;
  for (int i = 0; i < (random ? 4096 : 1); ++i) {
    const std::string body = replace_ids(o.body, rng, o.ids);
    std::string r = o.method + " " + replace_ids(o.path, rng, o.ids) + " HTTP/1.1\r\nHost: localhost\r\n";
    for (const auto& h : o.headers) r += h + "\r\n";
    if (!body.empty() || o.method == "POST" || o.method == "PUT")
      r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "\r\n" + body;
    out.push_back(std::move(r));
  }
  return out;
}

// One parsed answer: how many bytes it took and its status. Pure: bytes in, no socket.
struct Parsed {
  enum Kind { kIncomplete, kAnswer, kBad } kind = kIncomplete;
  std::size_t size = 0;
  int status = 0;
};

bool equals_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

Parsed parse_answer(std::string_view in) {
  const auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    return {in.size() > 65536 ? Parsed::kBad : Parsed::kIncomplete, 0, 0};
  }
  const std::string_view head = in.substr(0, head_end + 2);
  if (head.size() < 12 || !head.starts_with("HTTP/1.") || head[8] != ' ') return {Parsed::kBad, 0, 0};
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return {Parsed::kBad, 0, 0};
    status = status * 10 + (head[i] - '0');
  }
  std::size_t body = 0;
  bool have_length = false;
  for (auto line = head.find("\r\n") + 2; line < head.size();) {
    const auto eol = head.find("\r\n", line);
    const std::string_view h = head.substr(line, eol - line);
    line = eol + 2;
    const auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = h.substr(0, colon);
    std::string_view value = h.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    if (equals_nocase(name, "content-length")) {
      body = 0;
      for (char c : value) {
        if (c < '0' || c > '9') break;
        body = body * 10 + static_cast<std::size_t>(c - '0');
      }
      have_length = true;
    } else if (equals_nocase(name, "transfer-encoding")) {
      return {Parsed::kBad, 0, status};  // chunked: not supported (see the header comment)
    }
  }
  const bool no_body = status < 200 || status == 204 || status == 304;
  if (no_body) body = 0;
  else if (!have_length) return {Parsed::kBad, 0, status};
  const std::size_t total = head_end + 4 + body;
  if (in.size() < total) return {Parsed::kIncomplete, 0, status};
  return {Parsed::kAnswer, total, status};
}

// Latencies in microseconds: 1 us buckets below 100 ms, 1 ms buckets up to 60 s.
class Histogram {
 public:
  void add(std::int64_t us) {
    us = std::max<std::int64_t>(us, 0);
    max_ = std::max(max_, us);
    ++count_;
    if (us < kFine) ++fine_[static_cast<std::size_t>(us)];
    else ++coarse_[static_cast<std::size_t>(std::min<std::int64_t>((us - kFine) / 1000, kCoarse - 1))];
  }
  std::int64_t percentile(double p) const {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::int64_t i = 0; i < kFine; ++i)
      if ((seen += fine_[static_cast<std::size_t>(i)]) >= rank) return i;
    for (std::int64_t i = 0; i < kCoarse; ++i)
      if ((seen += coarse_[static_cast<std::size_t>(i)]) >= rank) return kFine + i * 1000;
    return max_;
  }
  std::int64_t max() const { return max_; }

 private:
  static constexpr std::int64_t kFine = 100000;
  static constexpr std::int64_t kCoarse = 60000;
  std::vector<std::uint64_t> fine_ = std::vector<std::uint64_t>(kFine);
  std::vector<std::uint64_t> coarse_ = std::vector<std::uint64_t>(kCoarse);
  std::uint64_t count_ = 0;
  std::int64_t max_ = 0;
};

struct Connection {
  int fd = -1;
  std::string out;          // bytes queued, from out_at on
  std::size_t out_at = 0;
  std::string in;           // bytes read, from in_at on
  std::size_t in_at = 0;
  std::deque<Clock::time_point> sent;  // one per request in flight, oldest first
  bool want_write = false;
};

int open_socket(const std::string& target) {
  int fd = -1;
  if (target.starts_with("unix:")) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = target.substr(5);
    if (path.size() >= sizeof a.sun_path) throw std::runtime_error("socket path too long: " + path);
    std::memcpy(a.sun_path, path.data(), path.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("connect " + target + ": " + std::strerror(errno));
  } else {
    const auto colon = target.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("target is not HOST:PORT: " + target);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(target.substr(colon + 1))));
    if (::inet_pton(AF_INET, target.substr(0, colon).c_str(), &a.sin_addr) != 1)
      throw std::runtime_error("not an IPv4 address: " + target.substr(0, colon));
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("connect " + target + ": " + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);  // connected (blocking) first: loopback
  return fd;
}

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)), requests_(make_requests(o_)), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    conns_.resize(static_cast<std::size_t>(o_.connections));
  }

  void run() {
    start_ = Clock::now();
    const auto deadline = start_ + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o_.duration_s));
    for (std::size_t i = 0; i < conns_.size(); ++i) open(i);
    std::vector<epoll_event> events(conns_.size());
    for (;;) {
      const auto now = Clock::now();
      if (now >= deadline) break;
      const int wait_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), wait_ms);
      if (n < 0 && errno != EINTR) throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
      for (int e = 0; e < n; ++e) {
        const auto i = static_cast<std::size_t>(events[e].data.u64);
        if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(i);
        if (conns_[i].fd >= 0 && (events[e].events & EPOLLOUT)) flush(i);
      }
    }
    elapsed_s_ = std::chrono::duration<double>(Clock::now() - start_).count();
  }

  void report() const {
    std::printf("HTTPLOAD requests=%llu seconds=%.3f rps=%.0f p50=%lld p90=%lld p99=%lld p999=%lld max=%lld"
                " non2xx=%llu errors=%llu\n",
                static_cast<unsigned long long>(answers_), elapsed_s_,
                static_cast<double>(answers_) / elapsed_s_, static_cast<long long>(hist_.percentile(50)),
                static_cast<long long>(hist_.percentile(90)), static_cast<long long>(hist_.percentile(99)),
                static_cast<long long>(hist_.percentile(99.9)), static_cast<long long>(hist_.max()),
                static_cast<unsigned long long>(non2xx_), static_cast<unsigned long long>(errors_));
  }

 private:
  void open(std::size_t i) {
    Connection& c = conns_[i];
    c = Connection{};
    c.fd = open_socket(o_.target);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    for (int d = 0; d < o_.depth; ++d) queue(c);
    flush(i);
  }

  void fail(std::size_t i) {
    ++errors_;
    ::close(conns_[i].fd);  // also leaves the epoll set
    conns_[i].fd = -1;
    open(i);
  }

  void queue(Connection& c) {
    c.out += requests_[next_request_];
    next_request_ = (next_request_ + 1) % requests_.size();
    c.sent.push_back(Clock::now());
  }

  void flush(std::size_t i) {
    Connection& c = conns_[i];
    while (c.out_at < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_at, c.out.size() - c.out_at, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) return fail(i);
      c.out_at += static_cast<std::size_t>(n);
    }
    if (c.out_at == c.out.size()) {
      c.out.clear();
      c.out_at = 0;
    }
    const bool want = c.out_at < c.out.size();
    if (want != c.want_write) {
      c.want_write = want;
      epoll_event ev{};
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      ev.data.u64 = i;
      ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }
  }

  void on_readable(std::size_t i) {
    Connection& c = conns_[i];
    char buf[65536];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return fail(i);
    c.in.append(buf, static_cast<std::size_t>(n));
    const auto now = Clock::now();
    int answered = 0;
    for (;;) {
      const Parsed p = parse_answer(std::string_view(c.in).substr(c.in_at));
      if (p.kind == Parsed::kIncomplete) break;
      if (p.kind == Parsed::kBad || c.sent.empty()) return fail(i);
      c.in_at += p.size;
      ++answers_;
      if (p.status < 200 || p.status > 299) ++non2xx_;
      hist_.add(std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent.front()).count());
      c.sent.pop_front();
      ++answered;
    }
    if (c.in_at == c.in.size()) {
      c.in.clear();
      c.in_at = 0;
    } else if (c.in_at > 65536) {
      c.in.erase(0, c.in_at);
      c.in_at = 0;
    }
    for (int k = 0; k < answered; ++k) queue(c);
    if (answered) flush(i);
  }

  Options o_;
  std::vector<std::string> requests_;
  std::size_t next_request_ = 0;
  int epoll_;
  std::vector<Connection> conns_;
  Histogram hist_;
  std::uint64_t answers_ = 0, non2xx_ = 0, errors_ = 0;
  Clock::time_point start_;
  double elapsed_s_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    Load load(parse_options(argc, argv));
    load.run();
    load.report();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_load: %s\n", e.what());
    return 1;
  }
}
