#pragma once
// SHA-256 (FIPS 180-4): the checksum run.sqlite records for every file a run keeps, so that a
// file damaged on disk is noticed when it is read rather than trusted.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace ppnet {

/// Incremental SHA-256: update() with the bytes in order, then hex() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  /// The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;  // bytes so far
};

/// The SHA-256 of `bytes` as 64 lowercase hex digits.
std::string sha256_hex(const std::string& bytes);
/// The SHA-256 of the file at `path`, read in blocks; throws std::runtime_error naming it when it
/// cannot be opened or read.
std::string sha256_of_file(const std::filesystem::path& path);

}  // namespace ppnet
