// The AES-GCM device through wolfCrypt's own API, as wolfSSL's record layer calls it: an Aes
// initialised with the device's id hands GCM encrypt/decrypt to the device. Known answers from
// the GCM specification's test cases 4 (AES-128) and 16 (AES-256); the same vectors through
// wolfSSL's software AES show the test's expectations are not the device's own invention. The
// device's record counters prove which path did the work.
#include "core/tls/aes_gcm_device.h"

// clang-format off
#include <wolfssl/options.h>
// clang-format on
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mailring::core {
namespace {

std::vector<uint8_t> Hex(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

struct Vector {
  const char* name;
  std::string key, iv, plaintext, aad, ciphertext, tag;
};

const std::string kPlaintext =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
    "49a6b525b16aedf5aa0de657ba637b39";
const std::string kAad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const std::string kIv = "cafebabefacedbaddecaf888";

const Vector kVectors[] = {
    {"AES-128 (GCM test case 4)", "feffe9928665731c6d6a8f9467308308", kIv, kPlaintext, kAad,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84a"
     "a051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"AES-256 (GCM test case 16)",
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", kIv, kPlaintext, kAad,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10568"
     "28838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

// One Aes bound to `device_id` (INVALID_DEVID: wolfSSL's software AES), keyed.
class KeyedAes {
 public:
  KeyedAes(int device_id, const std::vector<uint8_t>& key) {
    EXPECT_EQ(wc_AesInit(&aes_, nullptr, device_id), 0);
    EXPECT_EQ(wc_AesGcmSetKey(&aes_, key.data(), static_cast<word32>(key.size())), 0);
  }
  ~KeyedAes() { wc_AesFree(&aes_); }
  Aes* get() { return &aes_; }

 private:
  Aes aes_;
};

class AesGcmDeviceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    device_ = AesGcmDeviceId();
    // Without AES-NI the device is off by design; nothing here can then be tested.
    if (GetParam() && !device_.has_value()) GTEST_SKIP() << "no AES-GCM device on this machine";
  }
  int device_id() const { return GetParam() ? *device_ : INVALID_DEVID; }
  // How many records the device itself handled must move by exactly this much.
  uint64_t expected_records(uint64_t n) const { return GetParam() ? n : 0; }

  std::optional<int> device_;
};

TEST_P(AesGcmDeviceTest, EncryptsKnownAnswers) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.name);
    KeyedAes aes(device_id(), Hex(v.key));
    const std::vector<uint8_t> plaintext = Hex(v.plaintext), iv = Hex(v.iv), aad = Hex(v.aad);
    std::vector<uint8_t> ciphertext(plaintext.size()), tag(16);
    const uint64_t before = AesGcmDeviceRecordCounts().encrypted;
    ASSERT_EQ(wc_AesGcmEncrypt(aes.get(), ciphertext.data(), plaintext.data(),
                               static_cast<word32>(plaintext.size()), iv.data(),
                               static_cast<word32>(iv.size()), tag.data(),
                               static_cast<word32>(tag.size()), aad.data(),
                               static_cast<word32>(aad.size())),
              0);
    EXPECT_EQ(AesGcmDeviceRecordCounts().encrypted - before, expected_records(1));
    EXPECT_EQ(ciphertext, Hex(v.ciphertext));
    EXPECT_EQ(tag, Hex(v.tag));
  }
}

TEST_P(AesGcmDeviceTest, DecryptsKnownAnswersInPlace) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.name);
    KeyedAes aes(device_id(), Hex(v.key));
    std::vector<uint8_t> buffer = Hex(v.ciphertext);  // TLS decrypts records in place
    const std::vector<uint8_t> iv = Hex(v.iv), aad = Hex(v.aad), tag = Hex(v.tag);
    const uint64_t before = AesGcmDeviceRecordCounts().decrypted;
    ASSERT_EQ(wc_AesGcmDecrypt(aes.get(), buffer.data(), buffer.data(),
                               static_cast<word32>(buffer.size()), iv.data(),
                               static_cast<word32>(iv.size()), tag.data(),
                               static_cast<word32>(tag.size()), aad.data(),
                               static_cast<word32>(aad.size())),
              0);
    EXPECT_EQ(AesGcmDeviceRecordCounts().decrypted - before, expected_records(1));
    EXPECT_EQ(buffer, Hex(v.plaintext));
  }
}

TEST_P(AesGcmDeviceTest, TamperedRecordFailsItsTagCheckWithoutPlaintext) {
  const Vector& v = kVectors[0];
  KeyedAes aes(device_id(), Hex(v.key));
  const std::vector<uint8_t> iv = Hex(v.iv), aad = Hex(v.aad);
  struct Tamper {
    const char* what;
    size_t ciphertext_byte;  // SIZE_MAX: none
    size_t tag_byte;
    size_t aad_byte;
  };
  for (const Tamper& tamper : {Tamper{"ciphertext", 7, SIZE_MAX, SIZE_MAX},
                               Tamper{"tag", SIZE_MAX, 15, SIZE_MAX},
                               Tamper{"header (AAD)", SIZE_MAX, SIZE_MAX, 0}}) {
    SCOPED_TRACE(tamper.what);
    std::vector<uint8_t> ciphertext = Hex(v.ciphertext), tag = Hex(v.tag), header = aad;
    if (tamper.ciphertext_byte != SIZE_MAX) ciphertext[tamper.ciphertext_byte] ^= 0x01;
    if (tamper.tag_byte != SIZE_MAX) tag[tamper.tag_byte] ^= 0x80;
    if (tamper.aad_byte != SIZE_MAX) header[tamper.aad_byte] ^= 0x10;
    std::vector<uint8_t> plaintext(ciphertext.size(), 0xAA);
    const uint64_t before = AesGcmDeviceRecordCounts().decrypted;
    EXPECT_EQ(wc_AesGcmDecrypt(aes.get(), plaintext.data(), ciphertext.data(),
                               static_cast<word32>(ciphertext.size()), iv.data(),
                               static_cast<word32>(iv.size()), tag.data(),
                               static_cast<word32>(tag.size()), header.data(),
                               static_cast<word32>(header.size())),
              AES_GCM_AUTH_E);
    EXPECT_EQ(AesGcmDeviceRecordCounts().decrypted, before);  // failures are not counted
    if (GetParam()) {
      // The device wipes what it decrypted; wolfSSL's software path is not held to that.
      EXPECT_EQ(plaintext, std::vector<uint8_t>(ciphertext.size(), 0));
    }
  }
}

TEST_P(AesGcmDeviceTest, KeysAlternatingOnOneThreadEachUseTheirOwn) {
  // The device caches the last key per thread: interleaved connections must not mix keys.
  KeyedAes first(device_id(), Hex(kVectors[0].key));
  KeyedAes second(device_id(), Hex(kVectors[1].key));
  const std::vector<uint8_t> plaintext = Hex(kPlaintext), iv = Hex(kIv), aad = Hex(kAad);
  for (int round = 0; round < 3; ++round) {
    for (int which = 0; which < 2; ++which) {
      std::vector<uint8_t> ciphertext(plaintext.size()), tag(16);
      ASSERT_EQ(wc_AesGcmEncrypt(which == 0 ? first.get() : second.get(), ciphertext.data(),
                                 plaintext.data(), static_cast<word32>(plaintext.size()),
                                 iv.data(), static_cast<word32>(iv.size()), tag.data(), 16,
                                 aad.data(), static_cast<word32>(aad.size())),
                0);
      EXPECT_EQ(ciphertext, Hex(kVectors[which].ciphertext)) << "round " << round;
      EXPECT_EQ(tag, Hex(kVectors[which].tag)) << "round " << round;
    }
  }
}

TEST_P(AesGcmDeviceTest, EmptyPlaintextStillAuthenticatesTheHeader) {
  // GCM test case 1 (AES-128, zero key, zero IV, nothing to encrypt): the tag alone.
  KeyedAes aes(device_id(), std::vector<uint8_t>(16, 0));
  const std::vector<uint8_t> iv(12, 0);
  std::vector<uint8_t> tag(16);
  ASSERT_EQ(wc_AesGcmEncrypt(aes.get(), nullptr, nullptr, 0, iv.data(), 12, tag.data(), 16,
                             nullptr, 0),
            0);
  EXPECT_EQ(tag, Hex("58e2fccefa7e3061367f1d57a4e7455a"));
}

INSTANTIATE_TEST_SUITE_P(DeviceAndSoftware, AesGcmDeviceTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Device") : std::string("Software");
                         });

}  // namespace
}  // namespace mailring::core
