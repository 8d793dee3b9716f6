// FakeConnectivityProxy: a faithful fake of SAP's Connectivity Proxy, the SOCKS5 endpoint through
// which cloud applications reach on-premise systems behind a Cloud Connector, on 127.0.0.1 port 0.
//
// One connection, as SAP documents it ("Using the TCP Protocol for Cloud Applications"):
//   ← 05 <n> <methods>          no 0x80 among them: → 05 FF, close (method_rejections)
//   → 05 80
//   ← 01 <len:4> <JWT> <len:1> <base64(location id)>   (length 00: no location id)
//   → 01 00                     the JWT validator accepts it and the location id is base64;
//                               otherwise → 01 01, close (auth_failures). With
//                               SetRejectJwtAtConnect(true) a rejected JWT gets 01 00 and then
//                               reply 05 to CONNECT, the other way SAP lists for it.
//   ← 05 <cmd> 00 <atyp> <addr> <port:2>   by name (ATYP 03) or IPv4 (ATYP 01), as the real one
//   → 05 <rep> 00 <atyp> <bnd.addr> <bnd.port>, rep chosen in this order:
//        ForceConnectReply(code) if set; 07 command other than CONNECT; 08 ATYP 04 (IPv6);
//        05 JWT rejected (SetRejectJwtAtConnect); 03 location id of no connected Cloud Connector
//        (SetLocations; the default is one Cloud Connector without a location id); 02 no
//        AddMapping for host:port (the Cloud Connector's access control); 04 the mapped
//        127.0.0.1 port refuses; 00 connected. Any non-zero reply closes the connection.
//   then bytes both ways until both directions ended (an EOF is passed on as shutdown(SHUT_WR)),
//   an error, idle_timeout without a byte, or Stop().
//
// Threads: one accepting, one per connection (at most 128 at a time; more are closed at once).
// Every wait is a poll() bounded by the idle timeout and woken by Stop(), which joins them all.
// Every public method is thread-safe; the JWT validator runs on connection threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace mailring::fakes {

class FakeConnectivityProxy {
 public:
  using JwtValidator = std::function<bool(std::string_view jwt)>;

  FakeConnectivityProxy();
  ~FakeConnectivityProxy();  // Stop()
  FakeConnectivityProxy(const FakeConnectivityProxy&) = delete;
  FakeConnectivityProxy& operator=(const FakeConnectivityProxy&) = delete;

  // Binds 127.0.0.1 port 0 and starts accepting. Once per object.
  absl::Status Start();
  // Closes the listener and every connection, joins every thread; idempotent.
  void Stop();
  uint16_t port() const { return port_.load(); }

  // Configuration. Locations and mappings apply to CONNECTs read afterwards, the rest to
  // connections accepted afterwards.
  // Default: any non-empty JWT is accepted.
  void SetJwtValidator(JwtValidator validator);
  // The location ids of the connected Cloud Connectors ("" is one without a location id).
  // Default: {""}.
  void SetLocations(std::set<std::string> location_ids);
  // virtual host:port (as the CONNECT names it; IPv4 in dotted form) → 127.0.0.1:real_port.
  void AddMapping(const std::string& virtual_host, uint16_t virtual_port, uint16_t real_port);
  void RemoveMapping(const std::string& virtual_host, uint16_t virtual_port);
  // Answers every CONNECT with `reply_code` after authentication; 0 goes back to the rules above.
  void ForceConnectReply(uint8_t reply_code);
  void SetRejectJwtAtConnect(bool reject_at_connect);
  // BND.ADDR type of the replies: 01 (IPv4, the default), 03 (a name) or 04 (IPv6), so that
  // clients meet every form.
  void SetBoundAddressType(uint8_t address_type);
  // Default 30 s. A connection silent this long in any phase is closed.
  void SetIdleTimeout(std::chrono::milliseconds timeout);

  // Counters since construction.
  int connections() const;                // accepted
  int method_rejections() const;          // answered 05 FF
  int auth_failures() const;              // JWT (or location id encoding) rejected, either way
  int connect_requests() const;           // CONNECT requests read
  int tunnels() const;                    // CONNECTs answered 00
  int replies(uint8_t reply_code) const;  // CONNECTs answered with reply_code
  std::string last_location_id() const;   // decoded, of the last authentication request
  std::string last_jwt() const;           // of the last authentication request
  std::string last_target() const;        // "host:port" of the last CONNECT

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  struct Settings {  // a copy taken by a connection when it needs them
    JwtValidator validator;
    bool reject_jwt_at_connect = false;
    uint8_t forced_reply = 0;
    uint8_t bound_address_type = 0x01;
    std::chrono::milliseconds idle_timeout{30000};
  };
  class Session;

  void Accept();
  void ReapFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(connections_mutex_);
  Settings CurrentSettings() const;

  std::atomic<uint16_t> port_{0};
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // written once by Stop(), never read: wakes every poll() for good
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  absl::Mutex connections_mutex_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(connections_mutex_);
  size_t live_connections_ ABSL_GUARDED_BY(connections_mutex_) = 0;

  mutable absl::Mutex mutex_;
  Settings settings_ ABSL_GUARDED_BY(mutex_);
  std::set<std::string> locations_ ABSL_GUARDED_BY(mutex_) = {""};
  std::map<std::pair<std::string, uint16_t>, uint16_t> mappings_ ABSL_GUARDED_BY(mutex_);
  int connections_count_ ABSL_GUARDED_BY(mutex_) = 0;
  int method_rejections_ ABSL_GUARDED_BY(mutex_) = 0;
  int auth_failures_ ABSL_GUARDED_BY(mutex_) = 0;
  int connect_requests_ ABSL_GUARDED_BY(mutex_) = 0;
  int tunnels_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<uint8_t, int> replies_ ABSL_GUARDED_BY(mutex_);
  std::string last_location_id_ ABSL_GUARDED_BY(mutex_);
  std::string last_jwt_ ABSL_GUARDED_BY(mutex_);
  std::string last_target_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace mailring::fakes
