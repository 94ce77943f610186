// A prepared data folder's own files: an image list, manifest.json and the part files.
#include "pipeline/data/manifest.h"
#include "pipeline/data/parts.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto root = fuzz::scratch() / "data";
  const auto parts = fuzz::split(data, size, 4);
  fuzz::write(pipeline::list_path(root, "train"), parts[0]);
  fuzz::write(pipeline::manifest_path(root), parts[1]);
  fuzz::write(pipeline::parts_names_path(root), parts[2]);
  fuzz::write(pipeline::parts_locations_path(root), parts[3]);
  try {
    pipeline::read_list(root, "train");
  } catch (const std::exception&) {
  }
  try {
    pipeline::read_manifest(root);
  } catch (const std::exception&) {
  }
  try {
    const auto p = pipeline::read_data_parts(root);
    const int box[4] = {0, 0, 8, 8};
    for (const auto& [path, img] : p.images) pipeline::parts_in_box(img.parts, box);
  } catch (const std::exception&) {
  }
  return 0;
}
