// The crypto-callback glue between wolfSSL and libcrypto's AES-GCM (core/tls/aes_gcm_cipher.h).
// Only wolfCrypt's headers here, never wolfssl/ssl.h: see aes_gcm_device.h.
#include "core/tls/aes_gcm_device.h"

// options.h first: it carries the configuration Debian built wolfSSL with (WOLF_CRYPTO_CB,
// HAVE_AESGCM), and the other wolfSSL headers depend on it.
// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include <atomic>
#include <mutex>
#include <string_view>

#include "core/log.h"
#include "core/tls/aes_gcm_cipher.h"

#if !defined(WOLF_CRYPTO_CB) || !defined(HAVE_AESGCM)
#error "mailring needs a wolfSSL built with crypto callbacks (WOLF_CRYPTO_CB) and AES-GCM"
#endif

namespace mailring::core {
namespace {

// Any id not used by another device in the process; wolfSSL reserves INVALID_DEVID (-2).
constexpr int kDeviceId = 0x6d72;  // "mr"
constexpr size_t kGcmIvSize = 12;  // the TLS nonce; other sizes are left to wolfSSL
constexpr size_t kGcmMaxTagSize = 16;

std::atomic<uint64_t> records_encrypted{0};
std::atomic<uint64_t> records_decrypted{0};

bool KeyIsSupported(const Aes* aes) { return aes->keylen == 16 || aes->keylen == 32; }

std::string_view KeyOf(const Aes& aes) {
  return {reinterpret_cast<const char*>(aes.devKey), static_cast<size_t>(aes.keylen)};
}

int Encrypt(wc_CryptoInfo* info) {
  const auto& op = info->cipher.aesgcm_enc;
  if (!KeyIsSupported(op.aes) || op.ivSz != kGcmIvSize || op.authTagSz > kGcmMaxTagSize ||
      op.authTagSz == 0) {
    return CRYPTOCB_UNAVAILABLE;
  }
  if (!AesGcmSeal(KeyOf(*op.aes), op.iv,
                  {reinterpret_cast<const char*>(op.authIn), op.authInSz}, op.in, op.sz, op.out,
                  op.authTag, op.authTagSz)) {
    return WC_HW_E;
  }
  records_encrypted.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

int Decrypt(wc_CryptoInfo* info) {
  const auto& op = info->cipher.aesgcm_dec;
  if (!KeyIsSupported(op.aes) || op.ivSz != kGcmIvSize || op.authTagSz > kGcmMaxTagSize ||
      op.authTagSz == 0) {
    return CRYPTOCB_UNAVAILABLE;
  }
  switch (AesGcmOpen(KeyOf(*op.aes), op.iv,
                     {reinterpret_cast<const char*>(op.authIn), op.authInSz}, op.in, op.sz,
                     op.out, op.authTag, op.authTagSz)) {
    case AesGcmOpenResult::kOpened:
      records_decrypted.fetch_add(1, std::memory_order_relaxed);
      return 0;
    case AesGcmOpenResult::kForged:
      return AES_GCM_AUTH_E;  // as wolfSSL's own code reports it
    case AesGcmOpenResult::kFailed:
      break;
  }
  return WC_HW_E;
}

int Callback(int device_id, wc_CryptoInfo* info, void* /*context*/) {
  if (device_id != kDeviceId || info == nullptr || info->algo_type != WC_ALGO_TYPE_CIPHER ||
      info->cipher.type != WC_CIPHER_AES_GCM) {
    return CRYPTOCB_UNAVAILABLE;
  }
  return info->cipher.enc ? Encrypt(info) : Decrypt(info);
}

// Why the device cannot be used here, or "" when it can.
const char* UnavailableReason() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("pclmul")) {
    return "the CPU has no AES-NI/PCLMULQDQ";
  }
#endif
  if (!AesGcmCipherAvailable()) return "libcrypto has no AES-GCM";
  // The device table is set up by wolfCrypt_Init (reference-counted; wolfSSL_Init calls it too):
  // before it, every slot looks taken.
  if (wolfCrypt_Init() != 0) return "wolfCrypt failed to initialise";
  if (wc_CryptoCb_RegisterDevice(kDeviceId, &Callback, nullptr) != 0) {
    return "wolfSSL refused to register the crypto-callback device";
  }
  return "";
}

}  // namespace

std::optional<int> AesGcmDeviceId() {
  static std::once_flag once;
  static bool available = false;
  std::call_once(once, [] {
    const char* reason = UnavailableReason();
    available = reason[0] == '\0';
    if (available) {
      MAILRING_LOG(kDebug, "TLS record crypto: AES-GCM on AES-NI through libcrypto");
    } else {
      MAILRING_LOG(kWarning, "TLS record crypto stays in wolfSSL's software AES (slower): ",
                   reason);
    }
  });
  if (!available) return std::nullopt;
  return kDeviceId;
}

AesGcmDeviceCounts AesGcmDeviceRecordCounts() {
  return {records_encrypted.load(std::memory_order_relaxed),
          records_decrypted.load(std::memory_order_relaxed)};
}

}  // namespace mailring::core
