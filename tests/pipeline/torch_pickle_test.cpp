#include "pipeline/formats/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

// A zip-format torch.save file whose data.pkl is `pickle`.
std::string write_pth(const test::TempDir& dir, const std::string& name, const std::string& pickle) {
  const std::string path = dir.file(name);
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeEndOfFile();
  return path;
}

std::string error_of(const std::string& path) {
  try {
    read_torch_save(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Hostile nesting is refused with a message, never a crash (it once overflowed the stack while
// the nested values were destroyed).
TEST(TorchPickle, DeepNestingIsRefusedWithoutCrashing) {
  test::TempDir dir;
  const std::string lists = std::string("\x80\x02") + std::string(200000, ']') + std::string(199999, 'a') + ".";
  std::string msg = error_of(write_pth(dir, "lists.pth", lists));
  EXPECT_NE(msg.find("containers nested deeper than 100"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("lists.pth")), std::string::npos) << msg;

  const std::string tuples = std::string("\x80\x02K\x01") + std::string(100000, '\x85') + ".";
  msg = error_of(write_pth(dir, "tuples.pth", tuples));
  EXPECT_NE(msg.find("containers nested deeper than 100"), std::string::npos) << msg;

  // 200,000 values left on the stack at STOP, and a dict of them: many, but flat, and refused
  // for what they are.
  const std::string flat = std::string("\x80\x02}") + std::string(200000, 'N') + ".";
  msg = error_of(write_pth(dir, "flat.pth", flat));
  EXPECT_NE(msg.find("not a dict of tensors"), std::string::npos) << msg;

  // Nesting a state dict can have (a dict in a dict in a dict) is fine up to the limit.
  std::string nested = "\x80\x02";
  for (int k = 0; k < 99; ++k) nested += std::string("}X\x01\x00\x00\x00k", 7);
  nested += "}";
  for (int k = 0; k < 99; ++k) nested += "s";
  nested += ".";
  msg = error_of(write_pth(dir, "ok-depth.pth", nested));
  EXPECT_NE(msg.find("holds no tensors"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ppnet::pipeline
