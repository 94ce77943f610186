// An archive file (tar in any compression, zip) extracted by libarchive through ppnet's checks.
// Refusing it is fine; a file written anywhere but below the destination is a finding.
#include <cstdlib>

#include "pipeline/data/archive.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto archive = fuzz::scratch() / "in.archive", dest = fuzz::scratch() / "dest";
  fuzz::write(archive, std::string(reinterpret_cast<const char*>(data), size));
  std::filesystem::create_directories(dest);
  try {
    pipeline::extract_archive(archive.string(), dest.string());
  } catch (const std::exception&) {
  }
  for (const auto& e : std::filesystem::directory_iterator(fuzz::scratch())) {
    if (e.path() != archive && e.path() != dest) std::abort();  // escaped the destination
  }
  return 0;
}
