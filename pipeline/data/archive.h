#pragma once
// Extraction of a data set's archive (CUB_200_2011.tgz) with libarchive.

#include <cstdint>
#include <functional>
#include <string>

namespace ppnet::pipeline {

/// Extracts the regular files and folders of `archive` below `dest`: a tar (ustar, pax, GNU;
/// uncompressed or compressed with any filter libarchive reads: gzip, bzip2, xz, zstd…) or a zip.
/// A member whose name is absolute or climbs out of `dest` with ".." is refused, and so is a
/// link whose target would lie outside `dest`; a hard link to an earlier member becomes a copy
/// of it, symbolic links and special files are skipped. Every file is written atomically.
/// `on_bytes` is called with the archive's bytes consumed so far, last with its size. Returns the
/// number of files.
/// Throws std::runtime_error "<archive>: …" for a damaged, truncated or unsafe archive.
uint64_t extract_archive(const std::string& archive, const std::string& dest,
                         const std::function<void(uint64_t)>& on_bytes = {});

}  // namespace ppnet::pipeline
