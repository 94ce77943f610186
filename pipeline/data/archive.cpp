#include "pipeline/data/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

#include "base/atomic_file.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;

struct ReaderCloser {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
using Reader = std::unique_ptr<struct archive, ReaderCloser>;

// More than any image or metadata file of a data set; a larger (or sparse) member is refused
// rather than held in memory.
constexpr uint64_t kMaxMemberBytes = uint64_t{4} << 30;

// A member name that stays below the destination: relative, and no ".." anywhere.
bool safe_member(const std::string& name) {
  if (name.empty() || name[0] == '/') return false;
  for (const auto& part : fs::path(name)) {
    if (part == "..") return false;
  }
  return true;
}

// A symbolic link's target, relative to the link's folder, that stays below the destination.
bool safe_link_target(const std::string& member, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  const fs::path resolved = (fs::path(member).parent_path() / target).lexically_normal();
  return resolved.empty() || *resolved.begin() != "..";
}

class Extractor {
 public:
  Extractor(std::string archive, fs::path dest) : archive_(std::move(archive)), dest_(std::move(dest)) {}

  uint64_t run(const std::function<void(uint64_t)>& on_bytes) {
    Reader reader(archive_read_new());
    if (!reader) throw std::runtime_error(archive_ + ": cannot set up libarchive");
    a_ = reader.get();
    archive_read_support_filter_all(a_);
    archive_read_support_format_tar(a_);
    archive_read_support_format_gnutar(a_);
    archive_read_support_format_zip(a_);
    check(archive_read_open_filename(a_, archive_.c_str(), 1 << 20));
    struct archive_entry* entry = nullptr;
    while (true) {
      const int r = archive_read_next_header(a_, &entry);
      if (r == ARCHIVE_EOF) break;
      check(r);
      member(entry);
      if (on_bytes) on_bytes(static_cast<uint64_t>(archive_filter_bytes(a_, -1)));
    }
    if (on_bytes) on_bytes(fs::file_size(archive_));  // what follows the last member is done too
    return files_;
  }

 private:
  // ARCHIVE_OK and ARCHIVE_WARN (e.g. an unknown pax keyword) go on; anything else throws.
  void check(int status) const {
    if (status == ARCHIVE_OK || status == ARCHIVE_WARN) return;
    const char* why = archive_error_string(a_);
    throw std::runtime_error(archive_ + ": damaged, truncated or not an archive (" +
                             (why ? why : "libarchive error " + std::to_string(status)) + ")");
  }

  [[noreturn]] void unsafe(const std::string& what) const { throw std::runtime_error(archive_ + ": " + what); }

  void member(struct archive_entry* entry) {
    const char* raw = archive_entry_pathname(entry);
    if (!raw) unsafe("a member's name cannot be read");
    const std::string name = raw;
    if (!safe_member(name)) unsafe("unsafe member name '" + name + "' (absolute or climbing out with ..)");
    const fs::path target = dest_ / name;
    if (const char* link = archive_entry_hardlink(entry)) {
      if (!safe_member(link)) unsafe("hard link '" + name + "' to '" + link + "' points outside the archive");
      const fs::path source = dest_ / link;
      if (fs::is_regular_file(fs::symlink_status(source))) {
        fs::create_directories(target.parent_path());
        fs::copy_file(source, target, fs::copy_options::overwrite_existing);
        ++files_;
      }
      return;
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        fs::create_directories(target);
        return;
      case AE_IFREG:
        write_file_atomic(target, contents());
        ++files_;
        return;
      case AE_IFLNK: {  // not created (a data set needs none), but one that escapes is refused
        const char* to = archive_entry_symlink(entry);
        if (!to || !safe_link_target(name, to)) {
          unsafe("symbolic link '" + name + "' to '" + (to ? to : "") + "' points outside the archive");
        }
        return;
      }
      default:  // devices, FIFOs, sockets: skipped
        return;
    }
  }

  std::string contents() {
    std::string data;
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      const int r = archive_read_data_block(a_, &block, &size, &offset);
      if (r == ARCHIVE_EOF) return data;
      check(r);
      if (offset < 0 || static_cast<uint64_t>(offset) < data.size()) unsafe("a member's blocks go backwards");
      if (static_cast<uint64_t>(offset) + size > kMaxMemberBytes) unsafe("a member is larger than 4 GiB");
      data.resize(static_cast<size_t>(offset));  // a sparse file's holes are zeros
      data.append(static_cast<const char*>(block), size);
    }
  }

  std::string archive_;
  fs::path dest_;
  struct archive* a_ = nullptr;
  uint64_t files_ = 0;
};

}  // namespace

uint64_t extract_archive(const std::string& archive, const std::string& dest,
                         const std::function<void(uint64_t)>& on_bytes) {
  return Extractor(archive, dest).run(on_bytes);
}

}  // namespace ppnet::pipeline
