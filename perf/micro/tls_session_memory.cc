// mailring_tls_session_memory: what one idle upstream TLS session holds in wolfSSL's heap, broken
// down by when it was allocated, and what each knob wolfSSL offers takes off.
//
//   tests/integration/test_ca.sh /tmp/ca &&
//     build/perf/micro/mailring_tls_session_memory --ca_dir /tmp/ca [--sessions 200]
//
// The client side is set up the way mailring's workers set it up (core/tls_client.h's
// TlsContext: system store off, the test CA as the extra bundle, verification on, TLS 1.3
// preferred, the AES-GCM device when the machine has one); the server is an in-process wolfSSL
// server presenting server-chain.pem (leaf + CA, EC P-256, like a typical mail server's leaf +
// intermediate). Client and server talk through in-memory queues on one thread.
//
// Every wolfSSL allocation goes through counting allocators (wolfSSL_SetAllocators); the
// allocations the client makes are tagged with the step that made them (wolfSSL_new, the
// handshake, the first records). After N sessions have completed their handshake and exchanged
// an IMAP-sized command and answer, the bytes still live per session are reported per step and
// per size, for each variant:
//   baseline            what mailring does today
//   free-handshake      + wolfSSL_FreeHandshakeResources() after the handshake
// Allocations whose count per session falls as --sessions grows are caches shared by the
// thread (wolfSSL's FP_ECC fixed-point tables: bounded, not per session); run with two session
// counts to tell them apart. The report is for people (Markdown tables); the exit status is 0
// unless setup failed.
// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/memory.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/tls_client.h"

ABSL_FLAG(std::string, ca_dir, "", "a directory written by tests/integration/test_ca.sh");
ABSL_FLAG(int, sessions, 200, "sessions held at once per variant (1..5000)");

namespace {

// --- counting allocators ---------------------------------------------------------------------
// Single-threaded by construction: only this program's main thread runs wolfSSL.
struct Allocation {
  size_t size;
  const char* step;  // null: not the client's (server, context, library)
};
absl::flat_hash_map<void*, Allocation>* live = nullptr;
const char* current_step = nullptr;  // the client step under way, or null
bool counting_enabled = false;

void* CountingMalloc(size_t size) {
  void* p = std::malloc(size);
  if (p != nullptr && counting_enabled) (*live)[p] = {size, current_step};
  return p;
}
void CountingFree(void* p) {
  if (p != nullptr && counting_enabled) live->erase(p);
  std::free(p);
}
void* CountingRealloc(void* p, size_t size) {
  const char* step = current_step;
  if (p != nullptr && counting_enabled) {
    auto it = live->find(p);
    if (it != live->end()) {
      step = it->second.step;
      live->erase(it);
    }
  }
  void* q = std::realloc(p, size);
  if (q != nullptr && counting_enabled) (*live)[q] = {size, step};
  return q;
}

// RAII for "the client is doing `step`".
class ClientStep {
 public:
  explicit ClientStep(const char* step) : previous_(current_step) { current_step = step; }
  ~ClientStep() { current_step = previous_; }

 private:
  const char* previous_;
};

// --- in-memory transport ---------------------------------------------------------------------
struct Pipe {
  std::deque<char> bytes;
};
struct Endpoint {
  Pipe* in;
  Pipe* out;
};

int Receive(WOLFSSL*, char* buffer, int size, void* context) {
  auto* endpoint = static_cast<Endpoint*>(context);
  if (endpoint->in->bytes.empty()) return WOLFSSL_CBIO_ERR_WANT_READ;
  int n = 0;
  while (n < size && !endpoint->in->bytes.empty()) {
    buffer[n++] = endpoint->in->bytes.front();
    endpoint->in->bytes.pop_front();
  }
  return n;
}
int Send(WOLFSSL*, char* buffer, int size, void* context) {
  auto* endpoint = static_cast<Endpoint*>(context);
  endpoint->out->bytes.insert(endpoint->out->bytes.end(), buffer, buffer + size);
  return size;
}

struct Connection {
  Pipe to_server, to_client;
  Endpoint client_end{&to_client, &to_server};
  Endpoint server_end{&to_server, &to_client};
  WOLFSSL* client = nullptr;
  WOLFSSL* server = nullptr;
};

WOLFSSL* Attach(WOLFSSL_CTX* ctx, Endpoint* endpoint) {
  WOLFSSL* ssl = wolfSSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  wolfSSL_SSLSetIORecv(ssl, Receive);
  wolfSSL_SSLSetIOSend(ssl, Send);
  wolfSSL_SetIOReadCtx(ssl, endpoint);
  wolfSSL_SetIOWriteCtx(ssl, endpoint);
  return ssl;
}

bool WouldBlock(WOLFSSL* ssl, int ret) {
  const int error = wolfSSL_get_error(ssl, ret);
  return error == WOLFSSL_ERROR_WANT_READ || error == WOLFSSL_ERROR_WANT_WRITE;
}

// Runs both handshakes to completion; false on failure (printed).
bool Handshake(Connection& c) {
  bool client_done = false, server_done = false;
  for (int round = 0; round < 64 && !(client_done && server_done); ++round) {
    if (!client_done) {
      ClientStep step("handshake");
      const int ret = wolfSSL_connect(c.client);
      if (ret == WOLFSSL_SUCCESS) {
        client_done = true;
      } else if (!WouldBlock(c.client, ret)) {
        char text[128];
        std::fprintf(stderr, "client handshake failed: %s\n",
                     wolfSSL_ERR_error_string(wolfSSL_get_error(c.client, ret), text));
        return false;
      }
    }
    if (!server_done) {
      const int ret = wolfSSL_accept(c.server);
      if (ret == WOLFSSL_SUCCESS) {
        server_done = true;
      } else if (!WouldBlock(c.server, ret)) {
        std::fprintf(stderr, "server handshake failed\n");
        return false;
      }
    }
  }
  return client_done && server_done;
}

// One IMAP-sized exchange after the handshake: the server's post-handshake messages (TLS 1.3
// NewSessionTicket) and a greeting reach the client, the client sends a command, the server
// answers. This is where an idle relayed session sits afterwards.
bool Exchange(Connection& c) {
  const std::string greeting = "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] logged in\r\n";
  const std::string command = "a1 IDLE\r\n";
  char buffer[512];
  if (wolfSSL_write(c.server, greeting.data(), static_cast<int>(greeting.size())) <= 0) {
    return false;
  }
  {
    ClientStep step("first records");
    if (wolfSSL_read(c.client, buffer, sizeof buffer) <= 0) return false;
    if (wolfSSL_write(c.client, command.data(), static_cast<int>(command.size())) <= 0) {
      return false;
    }
  }
  if (wolfSSL_read(c.server, buffer, sizeof buffer) <= 0) return false;
  const std::string idling = "+ idling\r\n";
  if (wolfSSL_write(c.server, idling.data(), static_cast<int>(idling.size())) <= 0) return false;
  ClientStep step("first records");
  return wolfSSL_read(c.client, buffer, sizeof buffer) > 0;
}

struct Variant {
  const char* name;
  bool free_handshake;
  bool verify = true;
};

void Report(const Variant& variant, int sessions, const std::string& version,
            const std::string& cipher) {
  std::map<std::string, size_t> by_step;
  // (step, size) → count, bytes (client only)
  std::map<std::pair<std::string, size_t>, std::pair<size_t, size_t>> by_size;
  size_t total = 0;
  for (const auto& [pointer, allocation] : *live) {
    if (allocation.step == nullptr) continue;
    by_step[allocation.step] += allocation.size;
    auto& bucket = by_size[{allocation.step, allocation.size}];
    bucket.first += 1;
    bucket.second += allocation.size;
    total += allocation.size;
  }
  std::printf("\n## %s (%s, %s): %.2f KiB per idle session (%d sessions)\n", variant.name,
              version.c_str(), cipher.c_str(), total / 1024.0 / sessions, sessions);
  std::printf("| allocated during | KiB per session |\n|---|---|\n");
  for (const auto& [step, bytes] : by_step) {
    std::printf("| %s | %.2f |\n", step.c_str(), bytes / 1024.0 / sessions);
  }
  std::printf("\n| allocated during | size (B) | allocations per session | KiB per session |\n"
              "|---|---|---|---|\n");
  size_t small = 0;
  for (const auto& [key, bucket] : by_size) {
    if (bucket.second < static_cast<size_t>(sessions) * 1024) {  // < 1 KiB per session
      small += bucket.second;
      continue;
    }
    std::printf("| %s | %zu | %.2f | %.2f |\n", key.first.c_str(), key.second,
                static_cast<double>(bucket.first) / sessions, bucket.second / 1024.0 / sessions);
  }
  std::printf("| (all) | smaller groups | | %.2f |\n", small / 1024.0 / sessions);
}

int Run(const Variant& variant, WOLFSSL_CTX* client_ctx, WOLFSSL_CTX* server_ctx, int sessions) {
  std::vector<std::unique_ptr<Connection>> connections;
  std::string version, cipher;
  for (int i = 0; i < sessions; ++i) {
    auto c = std::make_unique<Connection>();
    {
      ClientStep step("wolfSSL_new");
      c->client = Attach(client_ctx, &c->client_end);
      if (c->client == nullptr) return 1;
      wolfSSL_set_verify(c->client, variant.verify ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE,
                         nullptr);
      wolfSSL_UseSNI(c->client, WOLFSSL_SNI_HOST_NAME, "localhost", 9);
      wolfSSL_check_domain_name(c->client, "localhost");
    }
    c->server = Attach(server_ctx, &c->server_end);
    if (c->server == nullptr || !Handshake(*c)) return 1;
    if (variant.free_handshake) {
      ClientStep step("handshake");
      wolfSSL_FreeHandshakeResources(c->client);
    }
    if (!Exchange(*c)) {
      std::fprintf(stderr, "exchange failed\n");
      return 1;
    }
    version = wolfSSL_get_version(c->client);
    cipher = wolfSSL_get_cipher_name(c->client);
    connections.push_back(std::move(c));
  }
  // The servers' state is not ours to count: free them first, so realloc chains are settled.
  for (auto& c : connections) {
    wolfSSL_free(c->server);
    c->server = nullptr;
  }
  Report(variant, sessions, version, cipher);
  for (auto& c : connections) wolfSSL_free(c->client);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_ca_dir);
  const int sessions = absl::GetFlag(FLAGS_sessions);
  if (dir.empty() || sessions < 1 || sessions > 5000) {
    std::fprintf(stderr, "usage: %s --ca_dir DIR (from tests/integration/test_ca.sh) "
                         "[--sessions 1..5000]\n", argv[0]);
    return 2;
  }
  live = new absl::flat_hash_map<void*, Allocation>();
  wolfSSL_SetAllocators(CountingMalloc, CountingFree, CountingRealloc);
  counting_enabled = true;

  mailring::core::TlsContextOptions options;
  options.use_system_ca = false;
  options.ca_file = dir + "/ca.pem";
  auto client_context = mailring::core::TlsContext::Create(options);
  if (!client_context.ok()) {
    std::fprintf(stderr, "client context: %s\n", client_context.status().ToString().c_str());
    return 1;
  }
  WOLFSSL_CTX* server_ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
  if (server_ctx == nullptr ||
      wolfSSL_CTX_use_certificate_chain_file(server_ctx, (dir + "/server-chain.pem").c_str()) !=
          WOLFSSL_SUCCESS ||
      wolfSSL_CTX_use_PrivateKey_file(server_ctx, (dir + "/server.key").c_str(),
                                      WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
    std::fprintf(stderr, "server context: cannot load %s/server-chain.pem and server.key\n",
                 dir.c_str());
    return 1;
  }
  std::printf("# wolfSSL %s: live client heap per idle upstream TLS session\n",
              wolfSSL_lib_version());
  for (const Variant& variant :
       {Variant{"baseline (what mailring does)", false},
        Variant{"+ wolfSSL_FreeHandshakeResources after the handshake", true},
        Variant{"verification off (for comparison only: mailring verifies)", false, false}}) {
    if (Run(variant, (*client_context)->get(), server_ctx, sessions) != 0) return 1;
  }
  wolfSSL_CTX_free(server_ctx);
  return 0;
}
