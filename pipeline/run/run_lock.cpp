#include "pipeline/run/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

// This process's command line ("ppnet train --stage joint …"), for the message another sees.
std::string own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& ch : all) {
    if (ch == '\0') ch = ' ';
  }
  while (!all.empty() && all.back() == ' ') all.pop_back();
  return all.size() > 300 ? all.substr(0, 300) + "…" : all;
}

}  // namespace

RunLock::RunLock(const fs::path& run_dir) {
  const fs::path path = run_dir / ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    throw std::runtime_error("run " + run_dir.string() + " cannot be written (" + std::strerror(errno) + " for " +
                             path.filename().string() + "), and this command records its results in the run: make "
                             "the folder writable, or copy it; info, report and explain read a read-only run");
  }
  if (fd_ < 0) throw std::runtime_error(path.string() + ": cannot open the run's lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[512] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw std::runtime_error(path.string() + ": cannot lock: " + std::strerror(err));
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    const auto space = holder.find(' ');
    throw std::runtime_error(run_dir.string() + " is in use by pid " +
                             (holder.empty() ? std::string("?") : holder.substr(0, space)) +
                             (space == std::string::npos ? std::string() : " (" + holder.substr(space + 1) + ")") +
                             ": one command at a time writes to a run; wait for it to finish or stop it");
  }
  const std::string who = std::to_string(::getpid()) + " " + own_command_line() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) < 0) {
    // The lock holds without the note; only the message another process prints is poorer.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ppnet::pipeline
