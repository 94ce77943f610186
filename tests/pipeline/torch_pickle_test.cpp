#include "pipeline/formats/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/backbone.h"
#include "pipeline/formats/reference_model.h"

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

// What ppnet writes for Python (`ppnet export --format pth`) it reads back as written: dtypes,
// shapes, a non-contiguous view (written contiguous), an empty tensor, 64-bit sizes.
TEST(TorchPickle, WrittenStateDictsReadBack) {
  test::TempDir dir;
  const auto view = torch::arange(12, torch::kFloat32).reshape({3, 4}).t();
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"a.weight", torch::randn({2, 3, 1, 1})}, {"b.num_batches_tracked", torch::tensor(int64_t{1} << 40)},
      {"c.mask", torch::tensor({true, false})}, {"d.view", view}, {"e.empty", torch::zeros({0, 5})},
      {"f.double", torch::rand({3}, torch::kFloat64)}};
  test::write_file(dir.file("sd.pth"), torch_save_bytes(tensors));
  const auto back = read_torch_save(dir.file("sd.pth"));
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_EQ(back.count(name), 1u) << name;
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), t)) << name;
  }
}

// Every architecture ppnet builds is recognised from its tensors' names and shapes, as a state
// dict of the reference (or ppnet's export) names them.
TEST(ReferenceModel, RecognisesEveryArchitectureFromItsTensors) {
  torch::NoGradGuard no_grad;
  for (const auto& arch : model::backbone_names()) {
    auto backbone = model::make_backbone(arch);
    model::TensorMap state;
    for (const auto& p : backbone->named_parameters()) state["features." + p.key()] = p.value();
    for (const auto& b : backbone->named_buffers()) state["features." + b.key()] = b.value();
    EXPECT_EQ(infer_arch(state), arch) << state.begin()->first;
  }
  EXPECT_EQ(infer_arch({{"features.features.0.weight", torch::zeros({4, 3, 3, 3})}}), "");
}

}  // namespace
}  // namespace ppnet::pipeline
