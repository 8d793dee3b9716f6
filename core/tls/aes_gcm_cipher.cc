// OpenSSL only: no wolfSSL header may be included here (see aes_gcm_cipher.h).
#include "core/tls/aes_gcm_cipher.h"

#include <openssl/evp.h>

#include <cstring>
#include <mutex>

namespace mailring::core {
namespace {

constexpr size_t kNonceSize = 12;
constexpr size_t kMaxTagSize = 16;

// The two ciphers, fetched once: an implicit fetch per record (EVP_aes_128_gcm()) would search
// the provider tables every time.
const EVP_CIPHER* cipher_128 = nullptr;
const EVP_CIPHER* cipher_256 = nullptr;

// One EVP context, keyed with the last key it saw.
class KeyedContext {
 public:
  KeyedContext() : ctx_(EVP_CIPHER_CTX_new()) {}
  ~KeyedContext() { EVP_CIPHER_CTX_free(ctx_); }
  KeyedContext(const KeyedContext&) = delete;
  KeyedContext& operator=(const KeyedContext&) = delete;

  // Keys (if the key changed) and sets the nonce; false on any libcrypto failure.
  bool Start(bool encrypt, std::string_view key, const uint8_t* nonce) {
    if (ctx_ == nullptr || (key.size() != 16 && key.size() != 32)) return false;
    const bool same_key =
        keyed_ && key_size_ == key.size() && std::memcmp(key_, key.data(), key.size()) == 0;
    if (!same_key) {
      keyed_ = false;
      const EVP_CIPHER* cipher = key.size() == 16 ? cipher_128 : cipher_256;
      const auto* raw = reinterpret_cast<const unsigned char*>(key.data());
      if (EVP_CipherInit_ex(ctx_, cipher, nullptr, raw, nonce, encrypt ? 1 : 0) != 1) {
        return false;
      }
      std::memcpy(key_, key.data(), key.size());
      key_size_ = key.size();
      keyed_ = true;
      return true;
    }
    return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, encrypt ? 1 : 0) == 1;
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

thread_local KeyedContext seal_context;
thread_local KeyedContext open_context;

bool ValidSizes(size_t tag_size, size_t size) {
  return tag_size > 0 && tag_size <= kMaxTagSize && size <= (1u << 30);
}

}  // namespace

bool AesGcmCipherAvailable() {
  static std::once_flag once;
  std::call_once(once, [] {
    cipher_128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    cipher_256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  });
  return cipher_128 != nullptr && cipher_256 != nullptr;
}

bool AesGcmSeal(std::string_view key, const uint8_t* nonce, std::string_view aad,
                const uint8_t* in, size_t size, uint8_t* out, uint8_t* tag, size_t tag_size) {
  static_assert(kNonceSize == 12, "EVP's GCM default nonce length is the TLS one");
  if (!AesGcmCipherAvailable() || !ValidSizes(tag_size, size)) return false;
  KeyedContext& context = seal_context;
  EVP_CIPHER_CTX* ctx = context.get();
  int length = 0;
  const bool ok =
      context.Start(/*encrypt=*/true, key, nonce) &&
      (aad.empty() ||
       EVP_EncryptUpdate(ctx, nullptr, &length, reinterpret_cast<const uint8_t*>(aad.data()),
                         static_cast<int>(aad.size())) == 1) &&
      (size == 0 || EVP_EncryptUpdate(ctx, out, &length, in, static_cast<int>(size)) == 1) &&
      EVP_EncryptFinal_ex(ctx, out + size, &length) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size), tag) == 1;
  if (!ok) context.Forget();
  return ok;
}

AesGcmOpenResult AesGcmOpen(std::string_view key, const uint8_t* nonce, std::string_view aad,
                            const uint8_t* in, size_t size, uint8_t* out, const uint8_t* tag,
                            size_t tag_size) {
  if (!AesGcmCipherAvailable() || !ValidSizes(tag_size, size)) return AesGcmOpenResult::kFailed;
  KeyedContext& context = open_context;
  EVP_CIPHER_CTX* ctx = context.get();
  int length = 0;
  const bool set_up =
      context.Start(/*encrypt=*/false, key, nonce) &&
      (aad.empty() ||
       EVP_DecryptUpdate(ctx, nullptr, &length, reinterpret_cast<const uint8_t*>(aad.data()),
                         static_cast<int>(aad.size())) == 1) &&
      (size == 0 || EVP_DecryptUpdate(ctx, out, &length, in, static_cast<int>(size)) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size),
                          const_cast<uint8_t*>(tag)) == 1;
  if (!set_up) {
    context.Forget();
    if (size > 0) std::memset(out, 0, size);
    return AesGcmOpenResult::kFailed;
  }
  if (EVP_DecryptFinal_ex(ctx, out + size, &length) != 1) {
    // A forged or corrupted record: no plaintext of it may leave.
    if (size > 0) std::memset(out, 0, size);
    return AesGcmOpenResult::kForged;
  }
  return AesGcmOpenResult::kOpened;
}

}  // namespace mailring::core
