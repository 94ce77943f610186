#pragma once
// Extraction of .tar.gz / .tgz / .tar archives (CUB_200_2011.tgz), with no external tools.

#include <cstdint>
#include <functional>
#include <string>

namespace ppnet::pipeline {

/// Extracts the regular files and folders of `archive` (gzip-compressed or not; ustar, GNU
/// long names and pax path records) below `dest`. Links and special files are skipped; a member
/// whose name is absolute or climbs out with ".." is refused. Every file is written atomically.
/// `on_bytes` is called with the compressed bytes consumed so far. Returns the number of files.
/// Throws std::runtime_error "<archive>: …" for a damaged or truncated archive.
uint64_t extract_tar(const std::string& archive, const std::string& dest,
                     const std::function<void(uint64_t)>& on_bytes = {});

}  // namespace ppnet::pipeline
