#pragma once
// The files tests/oracle/make_reference.py writes (models of the reference implementation's
// structure, their inputs and outputs, images): in $PPNET_ORACLE_DIR/reference under ctest's
// fixture "oracle.reference", else made once per process in the temp folder.

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "test_paths.h"

namespace ppnet::test {

inline std::string reference_file(const std::string& name) {
  static const std::string dir = [] {
    if (const char* oracle = std::getenv("PPNET_ORACLE_DIR")) return std::string(oracle) + "/reference";
    const std::string d = (std::filesystem::temp_directory_path() / "ppnet-oracle-reference").string();
    const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR + "/tests/oracle/make_reference.py " + d;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    return d;
  }();
  return dir + "/" + name;
}

}  // namespace ppnet::test
