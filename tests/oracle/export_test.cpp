// `ppnet export` against Debian's python3-torch: the state dict it writes loads into a ProtoPNet
// of the reference implementation's structure (tests/oracle/reference/) with
// load_state_dict(strict=True) and gives ppnet's logits; import → export gives back the
// reference's own state dict exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/formats/safetensors.h"
#include "pipeline/formats/torch_pickle.h"
#include "pipeline/run/run_folder.h"
#include "pipeline/stages/checkpoint.h"
#include "tests/common/test_util.h"
#include "test_paths.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;

std::string reference(const std::string& name) {
  static const std::string dir = test::oracle_folder("make_reference.py", "reference");
  return dir + "/" + name;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// import → export (reference names) is the reference's state dict, bit for bit, in both formats;
// ppnet's names are its own module's.
TEST(Export, RoundTripFromTheReferenceIsExact) {
  test::TempDir dir;
  const std::string run = dir.file("run");
  ASSERT_EQ(test::run_ppnet("import --reference " + reference("vgg11_whole.pth") + " --run " + run).exit_code, 0);
  const auto original = pipeline::read_torch_save(reference("vgg11_state.pth"));
  for (const std::string format : {"pth", "safetensors"}) {
    const std::string out = dir.file("model." + format);
    const auto r = test::run_ppnet("export --run " + run + " --out " + out + " --format " + format);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto exported = format == "pth" ? pipeline::read_torch_save(out) : pipeline::read_safetensors(out);
    ASSERT_EQ(exported.size(), original.size()) << format;
    for (const auto& [name, t] : original) {
      ASSERT_EQ(exported.count(name), 1u) << format << " lacks " << name;
      EXPECT_TRUE(torch::equal(exported.at(name), t)) << format << ": " << name;
    }
  }
  ASSERT_EQ(test::run_ppnet("export --run " + run + " --out " + dir.file("own.safetensors") + " --names ppnet").exit_code, 0);
  const auto own = pipeline::read_safetensors(dir.file("own.safetensors"));
  EXPECT_EQ(own.count("ones"), 0u);
  ASSERT_EQ(own.count("prototype_class_identity"), 1u);
  EXPECT_EQ(own.size(), original.size());
  const auto info = read_json(dir.file("own.json"));
  EXPECT_EQ(info.at("arch"), "vgg11");
  EXPECT_EQ(info.at("img_size"), 64);
  EXPECT_EQ(info.at("prototype_shape"), nlohmann::json({6, 16, 1, 1}));
  EXPECT_EQ(info.at("prototype_classes"), nlohmann::json({0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(info.at("class_names"), nlohmann::json({"0", "1", "2"}));
  EXPECT_TRUE(info.at("projection").is_null());
}

// A model ppnet changed (a joint epoch, projection, last layer) loads strictly into the
// reference's structure in Python from either format and gives ppnet's logits.
TEST(Export, PythonLoadsItStrictlyAndGivesPpnetsLogits) {
  test::TempDir dir;
  const std::string data = dir.file("data"), run = dir.file("run");
  ASSERT_EQ(test::run_ppnet("prepare --folder " + reference("images") + " --out " + data + " --copies 0 --threads 2").exit_code, 0);
  for (const std::string& step : {"import --reference " + reference("vgg11_whole.pth") + " --run " + run + " --data " + data,
                                  "train --stage joint --run " + run + " --data " + data + " --epochs 1 --batch-size 3 --threads 2",
                                  "project --run " + run + " --data " + data + " --threads 2",
                                  "last-layer --run " + run + " --data " + data + " --threads 2"}) {
    const auto r = test::run_ppnet(step);
    ASSERT_EQ(r.exit_code, 0) << step << "\n" << r.err;
  }
  auto folder = pipeline::RunFolder::open(run);
  auto net = pipeline::load_latest_model(folder, torch::kCPU);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto ours = net->forward(pipeline::read_torch_save(reference("input.pth")).at("x"));
  EXPECT_GT((net->prototype_vectors() - pipeline::read_torch_save(reference("vgg11_state.pth")).at("prototype_vectors")).abs().max().item<double>(),
            1e-3) << "the model is ppnet's, not the imported one";
  for (const std::string format : {"pth", "safetensors"}) {
    const std::string out = dir.file("export/model." + format);
    const auto r = test::run_ppnet("export --run " + run + " --out " + out + " --format " + format + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR + "/tests/oracle/load_export.py " + out + " " +
                            reference("input.pth") + " " + dir.file("python-" + format + ".pth");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto theirs = pipeline::read_torch_save(dir.file("python-" + format + ".pth"));
    EXPECT_LE((ours.logits - theirs.at("logits")).abs().max().item<double>(), 1e-4) << format;
    EXPECT_LE((ours.min_distances - theirs.at("min_distances")).abs().max().item<double>(), 1e-4) << format;
    const auto info = read_json(dir.file("export/model.json"));
    EXPECT_EQ(info.at("class_names"), nlohmann::json({"class0", "class1", "class2"}));
    EXPECT_EQ(info.at("projection").at("prototypes").size(), 6u);
    EXPECT_EQ(info.at("sha256"), nlohmann::json::parse(r.out).at("sha256"));
  }
}

TEST(Export, RefusesToWriteIntoTheRunsOwnFilesAndBadOptions) {
  test::TempDir dir;
  const std::string run = dir.file("run");
  ASSERT_EQ(test::run_ppnet("import --reference " + reference("vgg11_whole.pth") + " --run " + run).exit_code, 0);
  const std::string kept = run + "/checkpoints/import1.pt";
  const std::string before = test::read_file(kept);
  auto r = test::run_ppnet("export --run " + run + " --out " + kept);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is one of the files of run"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(kept), before);
  r = test::run_ppnet("export --run " + run + " --out " + dir.file("m.bin") + " --format onnx");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--format 'onnx'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ppnet
