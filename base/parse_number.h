#pragma once
// Numbers in text that comes from outside ppnet (list and annotation files, the environment):
// the whole string or nothing.

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ppnet {

/// `s` as a base-10 integer, all of it; false for anything else (empty, trailing text, out of range).
inline bool parse_int(const std::string& s, int64_t* v) {
  size_t used = 0;
  try {
    *v = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size();
}

/// `s` as a finite number, all of it; false for anything else.
inline bool parse_double(const std::string& s, double* v) {
  size_t used = 0;
  try {
    *v = std::stod(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size() && std::isfinite(*v);
}

}  // namespace ppnet
