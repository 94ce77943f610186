#include "base/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace ppnet {
namespace {

// Read once: the test hooks are fixed for the life of a process.
struct CrashSettings {
  uint64_t after = 0;  // 0: never
  std::string log;
  CrashSettings() {
    if (const char* v = std::getenv("PPNET_CRASH_AFTER")) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v, &end, 10);
      if (end != v && *end == '\0' && v[0] != '-') after = n;
    }
    if (const char* v = std::getenv("PPNET_CRASH_LOG")) log = v;
  }
};

const CrashSettings& settings() {
  static const CrashSettings s;
  return s;
}

}  // namespace

void durable_write(const char* kind, const std::string& path) {
  static std::atomic<uint64_t> count{0};
  const uint64_t n = ++count;
  const CrashSettings& s = settings();
  if (!s.log.empty()) {
    const std::string line = std::to_string(n) + " " + kind + " " + path + "\n";
    const int fd = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      [[maybe_unused]] const ssize_t w = ::write(fd, line.data(), line.size());  // one append: whole lines
      ::close(fd);
    }
  }
  if (s.after != 0 && n == s.after) ::kill(::getpid(), SIGKILL);
}

}  // namespace ppnet
