#include "base/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "base/interrupt.h"

#include "base/crash_point.h"

namespace ppnet {

namespace fs = std::filesystem;

void create_folders(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw std::runtime_error(path.string() + ": cannot create the folder (" + ec.message() + ")");
}

void write_file_atomic(const fs::path& path, const void* data, size_t size) {
  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  if (path.has_parent_path()) create_folders(path.parent_path());
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp-" +
                                             std::to_string(::getpid()) + "-" +
                                             std::to_string(counter++));
  // A full disk or quota goes away: the caller's work can be resumed once it has.
  const auto fail = [&](const std::string& what, int error) {
    const std::string message = path.string() + ": " + what + " (" + std::strerror(error) + ")";
    if (error == ENOSPC || error == EDQUOT) throw Resumable(message);
    throw std::runtime_error(message);
  };
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write", errno);
  const bool ok = std::fwrite(data, 1, size, f) == size;
  const int write_error = errno;
  if (std::fclose(f) != 0 || !ok) {
    const int error = ok ? errno : write_error;
    fs::remove(tmp, ec);
    fail("write failed", error);
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(path.string() + ": cannot rename into place: " + ec.message());
  }
  durable_write("rename", path.string());
}

void write_file_atomic(const fs::path& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_output_file(const fs::path& path, const std::string& bytes) {
  std::error_code ec;
  const fs::path target = fs::is_symlink(fs::symlink_status(path, ec)) ? fs::weakly_canonical(path, ec) : path;
  const auto status = fs::status(target, ec);
  if (fs::is_directory(status)) throw std::runtime_error(path.string() + ": is a folder; name a file");
  if (fs::exists(status) && !fs::is_regular_file(status)) {  // a device, FIFO or socket: write into it
    std::FILE* f = std::fopen(target.c_str(), "wb");
    if (!f) throw std::runtime_error(path.string() + ": cannot write (" + std::strerror(errno) + ")");
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) throw std::runtime_error(path.string() + ": write failed (" + std::strerror(errno) + ")");
    return;
  }
  write_file_atomic(target, bytes);
}

bool is_temporary_name(const std::string& filename) {
  return !filename.empty() && filename[0] == '.' && filename.find(".tmp-") != std::string::npos;
}

size_t remove_temporary_files(const fs::path& root) {
  size_t removed = 0;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return 0;
  std::vector<fs::path> doomed;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec) && is_temporary_name(it->path().filename().string())) {
      doomed.push_back(it->path());
    }
  }
  for (const auto& p : doomed) removed += fs::remove(p, ec) ? 1 : 0;
  return removed;
}

}  // namespace ppnet
