#include "base/memory_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <regex>
#include <stdexcept>

namespace ppnet {

int64_t parse_memory_size(const std::string& text) {
  static const std::regex kSize(R"(\s*([0-9]+(\.[0-9]+)?)\s*(([kKmMgGtT])(i?B)?|B)?\s*)");
  std::smatch m;
  const auto expected = [&] {
    return std::invalid_argument("'" + text + "': expected a size such as 6G, 512M or 1.5GiB (binary multiples K, M, G, T)");
  };
  if (!std::regex_match(text, m, kSize)) throw expected();
  double bytes = std::stod(m[1].str());
  if (m[4].matched) {
    const std::string units = "kmgt";
    const auto power = units.find(static_cast<char>(std::tolower(m[4].str()[0])));
    bytes *= std::pow(1024.0, static_cast<double>(power + 1));
  }
  if (!(bytes >= 1) || bytes > 9.0e18) throw expected();
  return static_cast<int64_t>(bytes);
}

std::string memory_size_text(int64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(v) >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 || v >= 100 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
  return text;
}

}  // namespace ppnet
