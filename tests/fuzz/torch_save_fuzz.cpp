// The pickle (data.pkl) of a zip-format torch.save file, with storages data/0 … data/3.
#include <caffe2/serialize/inline_container.h>

#include "pipeline/formats/torch_pickle.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  fuzz::reset_scratch();
  const auto path = (fuzz::scratch() / "w.pth").string();
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    writer.writeRecord("data.pkl", data, size);
    const std::string storage(1024, '\1');
    for (const char* key : {"data/0", "data/1", "data/2", "data/3"}) writer.writeRecord(key, storage.data(), storage.size());
    writer.writeEndOfFile();
  }
  try {
    pipeline::read_torch_save(path);
  } catch (const std::exception&) {
  }
  return 0;
}
