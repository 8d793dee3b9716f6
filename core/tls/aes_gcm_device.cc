// The crypto-callback glue between wolfSSL and libcrypto. This translation unit includes only
// wolfCrypt's headers (never wolfssl/ssl.h) next to OpenSSL's: see aes_gcm_device.h.
#include "core/tls/aes_gcm_device.h"

// options.h first: it carries the configuration Debian built wolfSSL with (WOLF_CRYPTO_CB,
// HAVE_AESGCM), and the other wolfSSL headers depend on it.
// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <openssl/evp.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "core/log.h"

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

// The two ciphers, fetched once: an implicit fetch per record (EVP_aes_128_gcm()) would search
// the provider tables every time.
const EVP_CIPHER* cipher_128 = nullptr;
const EVP_CIPHER* cipher_256 = nullptr;

// One EVP context per thread and direction, keyed with the last key it saw. A TLS connection
// keeps one key per direction for its lifetime, so on a busy worker the key schedule is reused
// record after record and only the nonce changes; another connection's record re-keys it.
class KeyedContext {
 public:
  KeyedContext() : ctx_(EVP_CIPHER_CTX_new()) {}
  ~KeyedContext() { EVP_CIPHER_CTX_free(ctx_); }
  KeyedContext(const KeyedContext&) = delete;
  KeyedContext& operator=(const KeyedContext&) = delete;

  // Keys (if the key changed) and sets the nonce; false on any libcrypto failure.
  bool Start(bool encrypt, const Aes& aes, const byte* iv) {
    if (ctx_ == nullptr) return false;
    const EVP_CIPHER* cipher = aes.keylen == 16 ? cipher_128 : cipher_256;
    const auto* key = reinterpret_cast<const unsigned char*>(aes.devKey);
    const size_t key_size = static_cast<size_t>(aes.keylen);
    const bool same_key = keyed_ && key_size_ == key_size && std::memcmp(key_, key, key_size) == 0;
    if (!same_key) {
      keyed_ = false;
      if (EVP_CipherInit_ex(ctx_, cipher, nullptr, key, iv, encrypt ? 1 : 0) != 1) return false;
      std::memcpy(key_, key, key_size);
      key_size_ = key_size;
      keyed_ = true;
      return true;
    }
    return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, iv, encrypt ? 1 : 0) == 1;
  }
  EVP_CIPHER_CTX* get() { return ctx_; }
  // After a failure the context's state is unknown: the next record keys it afresh.
  void Forget() { keyed_ = false; }

 private:
  EVP_CIPHER_CTX* ctx_;
  unsigned char key_[32] = {};
  size_t key_size_ = 0;
  bool keyed_ = false;
};

thread_local KeyedContext encrypt_context;
thread_local KeyedContext decrypt_context;

bool KeyIsSupported(const Aes* aes) { return aes->keylen == 16 || aes->keylen == 32; }

int Encrypt(wc_CryptoInfo* info) {
  const auto& op = info->cipher.aesgcm_enc;
  if (!KeyIsSupported(op.aes) || op.ivSz != kGcmIvSize || op.authTagSz > kGcmMaxTagSize) {
    return CRYPTOCB_UNAVAILABLE;
  }
  KeyedContext& context = encrypt_context;
  EVP_CIPHER_CTX* ctx = context.get();
  int length = 0;
  const bool ok =
      context.Start(/*encrypt=*/true, *op.aes, op.iv) &&
      (op.authInSz == 0 ||
       EVP_EncryptUpdate(ctx, nullptr, &length, op.authIn, static_cast<int>(op.authInSz)) == 1) &&
      (op.sz == 0 ||
       EVP_EncryptUpdate(ctx, op.out, &length, op.in, static_cast<int>(op.sz)) == 1) &&
      EVP_EncryptFinal_ex(ctx, op.out + op.sz, &length) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(op.authTagSz),
                          op.authTag) == 1;
  if (!ok) {
    context.Forget();
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
  KeyedContext& context = decrypt_context;
  EVP_CIPHER_CTX* ctx = context.get();
  int length = 0;
  const bool set_up =
      context.Start(/*encrypt=*/false, *op.aes, op.iv) &&
      (op.authInSz == 0 ||
       EVP_DecryptUpdate(ctx, nullptr, &length, op.authIn, static_cast<int>(op.authInSz)) == 1) &&
      (op.sz == 0 ||
       EVP_DecryptUpdate(ctx, op.out, &length, op.in, static_cast<int>(op.sz)) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(op.authTagSz),
                          const_cast<byte*>(op.authTag)) == 1;
  if (!set_up) {
    context.Forget();
    return WC_HW_E;
  }
  if (EVP_DecryptFinal_ex(ctx, op.out + op.sz, &length) != 1) {
    // A forged or corrupted record: no plaintext of it may leave, as with wolfSSL's own code.
    if (op.sz > 0) std::memset(op.out, 0, op.sz);
    return AES_GCM_AUTH_E;
  }
  records_decrypted.fetch_add(1, std::memory_order_relaxed);
  return 0;
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
  cipher_128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  cipher_256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher_128 == nullptr || cipher_256 == nullptr) return "libcrypto has no AES-GCM";
  // wolfCrypt's first initialisation clears the device table, so it must come before the
  // registration (it is reference-counted: wolfSSL_Init later does not clear it again).
  if (wolfCrypt_Init() != 0) return "wolfCrypt does not initialise";
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
