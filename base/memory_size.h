#pragma once
// Sizes of memory as users write them ("6G", "512M") and as ppnet says them ("1.5 GiB").

#include <cstdint>
#include <string>

namespace ppnet {

/// "6G", "512M", "1.5GiB", "800k" or a plain count of bytes → bytes (binary multiples: K, M, G,
/// T, with or without "iB"/"B"). Throws std::invalid_argument "'TEXT': expected …" for anything
/// else, zero and sizes under a byte included.
int64_t parse_memory_size(const std::string& text);

/// "1.5 GiB", "38.0 MiB", "300 MiB", "900 B".
std::string memory_size_text(int64_t bytes);

}  // namespace ppnet
