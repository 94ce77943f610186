// A .safetensors file: u64 header length, JSON header, data.
#include "pipeline/formats/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto path = fuzz::scratch() / "w.safetensors";
  fuzz::write(path, std::string(reinterpret_cast<const char*>(data), size));
  try {
    pipeline::read_safetensors(path.string());
  } catch (const std::exception&) {
  }
  return 0;
}
