// A torch.save file around the input: its first byte chooses the format — even: the zip format,
// the rest of the input as data.pkl, with storages data/0 … data/15; odd: the legacy format, the
// rest as the object pickle after the header pickles, followed by a key list and storages
// "0" … "15". Read as a state dict and as a reference ProtoPNet (objects, module trees, sets,
// the legacy format's module persistent ids).
#include <caffe2/serialize/inline_container.h>

#include <fstream>

#include "pipeline/formats/reference_model.h"
#include "pipeline/formats/torch_pickle.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr int kStorages = 16;
constexpr size_t kStorageBytes = 1024;

void write_zip(const std::string& path, const uint8_t* data, size_t size) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", data, size);
  const std::string storage(kStorageBytes, '\1');
  for (int k = 0; k < kStorages; ++k) writer.writeRecord("data/" + std::to_string(k), storage.data(), storage.size());
  writer.writeEndOfFile();
}

// Pickles (protocol 2) of the magic number, protocol 1001, a system-information dict; then the
// input; then ["0", …, "15"] and each storage as float32s.
void write_legacy(const std::string& path, const uint8_t* data, size_t size) {
  std::string f("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  f += std::string("\x80\x02M\xe9\x03.", 6);                              // 1001
  f += std::string("\x80\x02}q\x00X\r\x00\x00\x00little_endianq\x01\x88s.", 27);  // {"little_endian": True}
  f.append(reinterpret_cast<const char*>(data), size);
  f += std::string("\x80\x02]q\x00(", 6);
  for (int k = 0; k < kStorages; ++k) {
    const std::string key = std::to_string(k);
    f += 'X';
    const uint32_t n = static_cast<uint32_t>(key.size());
    f.append(reinterpret_cast<const char*>(&n), 4);
    f += key;
  }
  f += "e.";
  for (int k = 0; k < kStorages; ++k) {
    const uint64_t numel = kStorageBytes / 4;
    f.append(reinterpret_cast<const char*>(&numel), 8);
    f += std::string(kStorageBytes, '\1');
  }
  std::ofstream(path, std::ios::binary) << f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ppnet;
  if (size == 0) return 0;
  fuzz::reset_scratch();
  const auto path = (fuzz::scratch() / "w.pth").string();
  if (data[0] % 2 == 0) {
    write_zip(path, data + 1, size - 1);
  } else {
    write_legacy(path, data + 1, size - 1);
  }
  try {
    pipeline::read_torch_save(path);
  } catch (const std::exception&) {
  }
  try {
    pipeline::read_reference_model(path, {"", 64, ""});
  } catch (const std::exception&) {
  }
  return 0;
}
