// AES-GCM on AES-NI through OpenSSL's libcrypto (EVP), for TLS records: the one place mailring
// calls libcrypto's ciphers. Used by the wolfSSL crypto-callback device (aes_gcm_device.h) and by
// the TLS 1.3 record layer a session takes over after the handshake (tls13_record_layer.h).
//
// Keys live with the caller; this file keeps one EVP context per thread and direction, keyed with
// the last key it saw. A busy worker relays record after record of one connection, so the key
// schedule is reused and only the nonce changes; another connection's record re-keys it (a few
// hundred nanoseconds with AES-NI). A connection therefore holds only its raw keys, not an EVP
// context of its own (about 1 KiB each): what an idle session costs matters at 10 000 sessions.
//
// This header names no library type on purpose: wolfssl/ssl.h and OpenSSL's headers cannot share
// a translation unit, and callers of both kinds include it.
//
// Contract: thread-safe (per-thread state); keys of 16 or 32 bytes, 12-byte nonces, tags of at
// most 16 bytes. A failed open leaves no plaintext behind in `out` (it is zeroed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mailring::core {

// False when libcrypto lacks AES-GCM (then nothing here may be called); fetches the ciphers once.
bool AesGcmCipherAvailable();

// Encrypts `size` bytes of `in` into `out` (may equal `in`) and writes the tag.
// False on a libcrypto failure.
bool AesGcmSeal(std::string_view key, const uint8_t* nonce, std::string_view aad,
                const uint8_t* in, size_t size, uint8_t* out, uint8_t* tag, size_t tag_size);

enum class AesGcmOpenResult { kOpened, kForged, kFailed };
// Decrypts `size` bytes of `in` into `out` (may equal `in`) and checks the tag: kForged when the
// tag does not match (a corrupted or forged record), kFailed on a libcrypto failure.
AesGcmOpenResult AesGcmOpen(std::string_view key, const uint8_t* nonce, std::string_view aad,
                            const uint8_t* in, size_t size, uint8_t* out, const uint8_t* tag,
                            size_t tag_size);

}  // namespace mailring::core
