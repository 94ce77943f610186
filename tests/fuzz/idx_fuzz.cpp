// The four IDX files of an MNIST-format folder, cut from one input.
#include "pipeline/data/sources.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto parts = fuzz::split(data, size, 4);
  const char* names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"};
  for (int k = 0; k < 4; ++k) fuzz::write(fuzz::scratch() / "mnist" / names[k], parts[static_cast<size_t>(k)]);
  try {
    const auto set = pipeline::read_idx(fuzz::scratch() / "mnist", "mnist");
    for (size_t i = 0; i < set.images.size() && i < 4; ++i) pipeline::load_source_image(set, set.images[i]);
  } catch (const std::exception&) {
  }
  return 0;
}
