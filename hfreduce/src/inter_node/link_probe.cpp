#include "inter_node/link_probe.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace hfreduce::inter_node {
namespace {

using Clock = std::chrono::steady_clock;

// Probe tags sit above the pipeline's (tree < 8192, ring < 16384).
constexpr int kPingTag = 30000, kStreamTag = 30001, kAckTag = 30002;
constexpr int kPings = 15;
constexpr std::size_t kPiece = std::size_t{128} << 10;     // one message of the stream
constexpr std::size_t kMaxStream = std::size_t{16} << 20;  // at most 16 MiB per direction
constexpr double kEnoughSeconds = 0.02;                    // a stream this long is measured

class Prober {
 public:
  Prober(transport::Transport& t, double timeout_s)
      : t_(t), peer_(1 - t.node()), timeout_(timeout_s) {}

  double latency_us();
  double gbps(double latency_us);

 private:
  void finish(transport::Operation& op, const char* what);
  void finish_all(std::vector<std::unique_ptr<transport::Operation>>& ops, const char* what) {
    for (auto& op : ops) finish(*op, what);
  }
  double stream_seconds(std::size_t bytes);

  transport::Transport& t_;
  int peer_;
  double timeout_;
  std::vector<char> buf_ = std::vector<char>(kPiece);
};

void Prober::finish(transport::Operation& op, const char* what) {
  const auto t0 = Clock::now();
  while (!op.test())
    if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_)
      throw Error(Status::timeout, "hfreduce: node " + std::to_string(t_.node()) +
                                       " timed out after " + std::to_string(timeout_) +
                                       " s measuring the link to node " + std::to_string(peer_) +
                                       " (" + what + ")");
}

double Prober::latency_us() {
  std::vector<double> rtt;
  char byte = 0;
  for (int i = 0; i <= kPings; ++i) {  // round 0 opens the connection and is not counted
    const auto t0 = Clock::now();
    if (t_.node() == 0) {
      auto s = t_.post_send(&byte, 1, peer_, kPingTag);
      finish(*s, "ping");
      auto r = t_.post_recv(&byte, 1, peer_, kPingTag);
      finish(*r, "pong");
    } else {
      auto r = t_.post_recv(&byte, 1, peer_, kPingTag);
      finish(*r, "ping");
      auto s = t_.post_send(&byte, 1, peer_, kPingTag);
      finish(*s, "pong");
    }
    if (i > 0) rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::nth_element(rtt.begin(), rtt.begin() + static_cast<long>(rtt.size() / 2), rtt.end());
  return rtt[rtt.size() / 2] / 2.0;
}

// Node 0 streams `bytes` in pieces to node 1, which answers with one byte when all have landed.
double Prober::stream_seconds(std::size_t bytes) {
  const std::size_t pieces = (bytes + kPiece - 1) / kPiece;
  std::vector<std::unique_ptr<transport::Operation>> ops;
  char ack = 0;
  const auto t0 = Clock::now();
  if (t_.node() == 0) {
    for (std::size_t i = 0; i < pieces; ++i)
      ops.push_back(t_.post_send(buf_.data(), kPiece, peer_, kStreamTag));
    finish_all(ops, "stream");
    auto r = t_.post_recv(&ack, 1, peer_, kAckTag);
    finish(*r, "stream acknowledgement");
  } else {
    // One buffer for every piece: only the arrival time matters.
    for (std::size_t i = 0; i < pieces; ++i)
      ops.push_back(t_.post_recv(buf_.data(), kPiece, peer_, kStreamTag));
    finish_all(ops, "stream");
    auto s = t_.post_send(&ack, 1, peer_, kAckTag);
    finish(*s, "stream acknowledgement");
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Streams of growing length until one lasts kEnoughSeconds; node 0 decides and tells node 1 (only
// node 0's clock counts: it spans the stream plus the acknowledgement's one-way latency).
double Prober::gbps(double latency_us) {
  std::size_t bytes = 4 * kPiece;
  double seconds = 0;
  while (true) {
    seconds = stream_seconds(bytes);
    char more = (seconds < kEnoughSeconds && bytes < kMaxStream) ? 1 : 0;
    if (t_.node() == 0) {
      auto s = t_.post_send(&more, 1, peer_, kAckTag);
      finish(*s, "stream decision");
    } else {
      auto r = t_.post_recv(&more, 1, peer_, kAckTag);
      finish(*r, "stream decision");
    }
    if (more == 0) break;
    bytes *= 4;
  }
  const double streamed = static_cast<double>((bytes + kPiece - 1) / kPiece * kPiece);
  return streamed / std::max(seconds - latency_us * 1e-6, seconds / 2) / 1e9;
}

}  // namespace

LinkModel probe_link(transport::Transport& transport, const LinkModel& given, double timeout_s) {
  LinkModel link = given;
  if (transport.nnodes() < 2 || transport.node() > 1) return link;
  Prober p(transport, timeout_s);
  if (!(given.latency_us > 0)) link.latency_us = p.latency_us();
  if (!(given.gbps > 0)) link.gbps = p.gbps(link.latency_us);
  return link;
}

}  // namespace hfreduce::inter_node
