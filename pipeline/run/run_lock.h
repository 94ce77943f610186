#pragma once
// One writing command per run folder: an exclusive advisory lock (flock) on RUN/.lock, held for
// the lifetime of the object. The operating system releases it when the process ends, however
// it ends, so a killed command never leaves a stale lock behind.

#include <filesystem>
#include <stdexcept>

namespace ppnet::pipeline {

class RunLock {
 public:
  /// Takes the lock without waiting. Throws std::runtime_error "RUN is in use by pid N (…)"
  /// when another process holds it, or naming the file when it cannot be created.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ppnet::pipeline
