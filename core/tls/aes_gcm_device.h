// AesGcmDevice: TLS record crypto (AES-GCM) on AES-NI, through OpenSSL's libcrypto.
//
// Debian's wolfSSL is built without AES-NI, so its software AES-GCM costs about 6 CPU-s per GB
// of TLS traffic: nearly all of what a TLS leg costs. wolfSSL hands every AES-GCM operation of a
// context whose device id is set (wolfSSL_CTX_SetDevId) to a crypto callback first; this device
// answers the AES-GCM encrypt and decrypt calls (TLS 1.3 and TLS 1.2 records, 128- and 256-bit
// keys) with libcrypto's EVP, which uses AES-NI and carry-less multiply, and declines every other
// operation (wolfSSL then does it in software, as without the device).
//
// This header names neither wolfSSL nor OpenSSL on purpose: wolfssl/ssl.h and OpenSSL's headers
// cannot share a translation unit (both define WOLFSSL_STACK-related names), so the glue lives
// alone in aes_gcm_device.cc. Only libcrypto is linked, never libssl (its SSL_* symbols clash with
// wolfSSL's compatibility layer).
//
// Contract: thread-safe. The device is registered at most once per process, on first use; when
// the CPU lacks AES-NI/PCLMULQDQ or registration fails, AesGcmDeviceId() says so and the caller
// leaves wolfSSL's software crypto in place (logged once).
#pragma once

#include <cstdint>
#include <optional>

namespace mailring::core {

// The registered device's id for wolfSSL_CTX_SetDevId, or nullopt when the device is not
// available on this machine (the first call logs why, once). Registers on the first call.
std::optional<int> AesGcmDeviceId();

// Records (AES-GCM operations) the device has encrypted and decrypted since the process started,
// over all threads; decrypts that failed their tag check are counted in neither.
struct AesGcmDeviceCounts {
  uint64_t encrypted = 0;
  uint64_t decrypted = 0;
};
AesGcmDeviceCounts AesGcmDeviceRecordCounts();

}  // namespace mailring::core
