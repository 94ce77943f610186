#pragma once
// Files that appear only complete: written under a temporary name, then renamed.

#include <filesystem>
#include <string>

namespace ppnet {

/// Creates folder `path` with its missing parents; throws std::runtime_error naming it and the
/// reason ("Permission denied" under a read-only parent, "Not a directory", a full disk).
void create_folders(const std::filesystem::path& path);

/// Writes `bytes` to `path` through a temporary file in the same folder (".<name>.tmp-<tag>"),
/// renamed over `path` once complete, so readers and resumed runs never see a partial file.
/// Creates missing parent folders. Throws std::runtime_error naming the path.
void write_file_atomic(const std::filesystem::path& path, const std::string& bytes);
void write_file_atomic(const std::filesystem::path& path, const void* data, size_t size);

/// Writes a file the user named in an output option: a new path or a regular file atomically,
/// as write_file_atomic; through a symbolic link, the link's target (the link stays a link); a
/// device, FIFO or socket directly, never replacing it by a regular file. Throws
/// std::runtime_error naming the path when it is a folder or the write fails.
void write_output_file(const std::filesystem::path& path, const std::string& bytes);

/// True for the temporary names write_file_atomic uses.
bool is_temporary_name(const std::string& filename);

/// Removes temporary files left below `root` by a killed process; returns how many.
size_t remove_temporary_files(const std::filesystem::path& root);

}  // namespace ppnet
