// Image decoding and CUB's crop, and the size read from an image's header (what prepare checks
// masks against): 8 bytes of box (x, y, w, h as signed 16-bit), one byte choosing the extension,
// then the file's bytes.
#include <cstring>

#include "pipeline/data/image_file.h"
#include "pipeline/data/sources.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  if (size < 9) return 0;
  fuzz::reset_scratch();
  int16_t box[4];
  std::memcpy(box, data, 8);
  static const char* const kExts[] = {".png", ".jpg", ".bmp", ".webp", ".tif"};
  pipeline::SourceSet set;
  set.kind = "cub";
  pipeline::SourceImage img;
  img.file = fuzz::scratch() / (std::string("x") + kExts[data[8] % 5]);
  img.has_box = true;
  for (int k = 0; k < 4; ++k) img.box[k] = box[k];
  fuzz::write(img.file, std::string(reinterpret_cast<const char*>(data + 9), size - 9));
  try {
    pipeline::load_source_image(set, img);
  } catch (const std::exception&) {
  }
  try {
    pipeline::image_file_size(img.file);
  } catch (const std::exception&) {
  }
  return 0;
}
