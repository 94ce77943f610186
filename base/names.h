#pragma once
// Enums that stand for a closed set of names (a stage kind, a schedule, a precision, …): the name
// of a value and the value of a name, from one table per enum whose order is the enum's.

#include <cstddef>
#include <stdexcept>
#include <string>

namespace ppnet {

/// names[value]: the enum's values must run 0, 1, … in the table's order.
template <class Enum, size_t N>
const char* name_of(const char* const (&names)[N], Enum value) {
  return names[static_cast<size_t>(value)];
}

/// The value whose name is `name`; throws std::invalid_argument "'NAME': expected a, b or c".
template <class Enum, size_t N>
Enum value_of(const char* const (&names)[N], const std::string& name) {
  std::string expected;
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<Enum>(i);
    expected += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(names[i]);
  }
  throw std::invalid_argument("'" + name + "': expected " + expected);
}

}  // namespace ppnet
