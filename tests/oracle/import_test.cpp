// `ppnet import` against models of the reference implementation's structure, written by Debian's
// python3-torch (tests/oracle/make_reference.py, run by ctest as the fixture "oracle.reference"):
// the imported run gives Python's logits, and every later command works on it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/sha256.h"
#include "pipeline/formats/reference_model.h"
#include "pipeline/formats/torch_pickle.h"
#include "pipeline/run/run_folder.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/import_model.h"
#include "tests/common/test_util.h"
#include "test_paths.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;

std::string reference(const std::string& name) {
  static const std::string dir = test::oracle_folder("make_reference.py", "reference");
  return dir + "/" + name;
}

std::string import_error(const pipeline::ImportConfig& c) {
  try {
    pipeline::run_import(c);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

pipeline::ImportConfig config(const std::string& file, const test::TempDir& dir, const std::string& run = "run") {
  pipeline::ImportConfig c;
  c.reference = reference(file);
  c.run = dir.file(run);
  c.runtime.threads = 2;
  return c;
}

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

class ImportWholeModel : public ::testing::TestWithParam<std::string> {};

// The whole model as torch.save(ppnet) writes it — zip format for vgg11 and densenet121, the
// legacy one for resnet18 — gives Python's logits and minimum distances, and its stage says
// what was imported.
TEST_P(ImportWholeModel, GivesPythonsLogits) {
  const std::string arch = GetParam();
  test::TempDir dir;
  const auto result = pipeline::run_import(config(arch + "_whole.pth", dir));
  EXPECT_EQ(result.arch, arch);
  EXPECT_EQ(result.img_size, 64);
  EXPECT_EQ(result.classes, 3);
  EXPECT_EQ(result.prototypes, 6);
  EXPECT_EQ(result.prototype_dim, 16);
  EXPECT_EQ(result.add_on, arch == "resnet18" ? "bottleneck" : "regular");
  EXPECT_EQ(result.activation, arch == "densenet121" ? "linear" : "log");
  EXPECT_EQ(result.format, arch == "resnet18" ? "whole model (legacy torch.save)" : "whole model (zip torch.save)");
  EXPECT_EQ(result.sha256, sha256_hex(test::read_file(reference(arch + "_whole.pth"))));

  auto run = pipeline::RunFolder::open(dir.file("run"));
  const auto stages = run.store().stages();
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].kind, db::StageKind::kImport);
  EXPECT_EQ(stages[0].status, db::StageStatus::kDone);
  const auto recorded = nlohmann::json::parse(stages[0].config_json);
  EXPECT_EQ(recorded.at("sha256"), result.sha256);
  EXPECT_EQ(run.class_names(), (std::vector<std::string>{"0", "1", "2"}));

  auto net = pipeline::load_latest_model(run, torch::kCPU);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = pipeline::read_torch_save(reference("input.pth")).at("x");
  const auto expected = pipeline::read_torch_save(reference(arch + "_out.pth"));
  const auto out = net->forward(x);
  EXPECT_LE(max_difference(out.logits, expected.at("logits")), 1e-4);
  EXPECT_LE(max_difference(out.min_distances, expected.at("min_distances")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Reference, ImportWholeModel, ::testing::Values("vgg11", "resnet18", "densenet121"));

// A state dict says neither the image size nor (for ppnet's check) the architecture: --img-size
// is required, --arch is checked against the tensors, and the weights are the whole model's.
TEST(ImportStateDict, NeedsTheImageSizeAndChecksTheArchitecture) {
  test::TempDir dir;
  auto c = config("vgg11_state.pth", dir);
  EXPECT_NE(import_error(c).find("give --img-size"), std::string::npos) << import_error(c);
  c.img_size = 64;
  c.arch = "resnet18";
  const std::string wrong = import_error(c);
  EXPECT_NE(wrong.find("those of vgg11, not --arch resnet18"), std::string::npos) << wrong;
  EXPECT_FALSE(fs::exists(dir.file("run") + "/run.sqlite")) << "nothing is written before the file is checked";
  c.arch = "vgg11";
  const auto result = pipeline::run_import(c);
  EXPECT_EQ(result.format, "state dict (zip torch.save)");
  pipeline::run_import(config("vgg11_whole.pth", dir, "whole"));
  auto a = pipeline::RunFolder::open(dir.file("run"));
  auto b = pipeline::RunFolder::open(dir.file("whole"));
  auto net_a = pipeline::load_latest_model(a, torch::kCPU);
  auto net_b = pipeline::load_latest_model(b, torch::kCPU);
  const auto pb = net_b->named_parameters();
  for (const auto& p : net_a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  // The folder now holds a run: a second import into it is refused.
  EXPECT_NE(import_error(c).find("already holds a run"), std::string::npos);
}

// Files that are not such a model are refused naming the file and what was found.
TEST(ImportRefusals, NameWhatWasFoundAndWhatWasExpected) {
  test::TempDir dir;
  struct Case {
    std::string file, expected;
  };
  for (const auto& k : std::vector<Case>{
           {"unknown_module.pth", "'add_on_layers.1' is a __main__.Swish, a module class ppnet does not know"},
           {"function_activation.pth", "ppnet runs only the reference's 'log' and 'linear', not a function of its own"},
           {"wrong_last_layer.pth", "last_layer.weight has shape [3, 5] but there are 6 prototypes"},
           {"input.pth", "it has no tensor 'prototype_vectors'"}}) {
    const std::string msg = import_error(config(k.file, dir, "run-" + k.file));
    EXPECT_NE(msg.find(reference(k.file)), std::string::npos) << msg;
    EXPECT_NE(msg.find(k.expected), std::string::npos) << msg;
  }
  // A class count that is not the model's.
  auto c = config("vgg11_whole.pth", dir, "names");
  test::write_file(dir.file("names.txt"), "cat\ndog\n");
  c.class_names = dir.file("names.txt");
  EXPECT_NE(import_error(c).find("names.txt has 2 classes but the model in"), std::string::npos) << import_error(c);
}

// From the command line, on images: import with the data, evaluate (Python's logits on the
// same PNGs, read with PIL), explain, train joint, project, last layer, analyze, prune, report,
// info.
TEST(ImportCommandLine, EvaluatesAsPythonAndEveryCommandGoesOn) {
  test::TempDir dir;
  const std::string data = dir.file("data"), run = dir.file("run"), model = reference("vgg11_whole.pth");
  ASSERT_EQ(test::run_ppnet("prepare --folder " + reference("images") + " --out " + data + " --copies 0 --threads 2").exit_code, 0);
  auto r = test::run_ppnet("import --reference " + model + " --run " + run + " --data " + data + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("class_names_from"), "data");
  r = test::run_ppnet("evaluate --run " + run + " --data " + data + " --predictions " + dir.file("ppnet.csv") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR + "/tests/oracle/reference_logits.py " + model +
                          " " + data + " test " + dir.file("python.csv");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream ours(dir.file("ppnet.csv")), theirs(dir.file("python.csv"));
  std::string a, b;
  std::getline(ours, a);  // header
  int compared = 0;
  while (std::getline(ours, a) && std::getline(theirs, b)) {
    // ppnet: "path",label,predicted,logit; Python: path,predicted,logit0,logit1,logit2
    std::vector<std::string> x, y;
    for (std::stringstream s(a); std::getline(s, a, ',');) x.push_back(a);
    for (std::stringstream s(b); std::getline(s, b, ',');) y.push_back(b);
    ASSERT_EQ(x.size(), 4u);
    ASSERT_EQ(y.size(), 5u);
    EXPECT_EQ(x[0], "\"" + y[0] + "\"");
    EXPECT_EQ(x[2], y[1]) << y[0];
    EXPECT_NEAR(std::stod(x[3]), std::stod(y[2 + std::stoi(y[1])]), 1e-4) << y[0];
    ++compared;
  }
  EXPECT_EQ(compared, 6);
  for (const std::string& step :
       {"explain --run " + run + " --dir " + reference("images/test/class1") + " --out " + dir.file("why") + " --threads 2",
        "train --stage joint --run " + run + " --data " + data + " --epochs 1 --batch-size 3 --threads 2",
        "project --run " + run + " --data " + data + " --threads 2",
        "last-layer --run " + run + " --data " + data + " --threads 2",
        "analyze --run " + run + " --data " + data + " --k 2 --threads 2",
        "prune --run " + run + " --data " + data + " --k 2 --threshold 1 --duplicates --threads 2",
        "report --run " + run + " --out " + dir.file("report.html"), "info --run " + run}) {
    r = test::run_ppnet(step);
    EXPECT_EQ(r.exit_code, 0) << step << "\n" << r.err;
  }
  EXPECT_NE(test::run_ppnet("info --run " + run).out.find("import"), std::string::npos);
}

// Without data: the classes are numbered (or named by --class-names); evaluate then takes any
// data with as many classes, and with --class-names only data of those names.
TEST(ImportCommandLine, WithoutDataTheClassesAreCheckedWhenDataComes) {
  test::TempDir dir;
  const std::string data = dir.file("data");
  ASSERT_EQ(test::run_ppnet("prepare --folder " + reference("images") + " --out " + data + " --copies 0 --threads 2").exit_code, 0);
  const std::string model = reference("vgg11_whole.pth");
  ASSERT_EQ(test::run_ppnet("import --reference " + model + " --run " + dir.file("numbered")).exit_code, 0);
  auto r = test::run_ppnet("evaluate --run " + dir.file("numbered") + " --data " + data + " --threads 2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  test::write_file(dir.file("names.txt"), "cat\ndog\nbird\n");
  ASSERT_EQ(test::run_ppnet("import --reference " + model + " --run " + dir.file("named") + " --class-names " + dir.file("names.txt"))
                .exit_code,
            0);
  r = test::run_ppnet("evaluate --run " + dir.file("named") + " --data " + data + " --threads 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("named by --class-names"), std::string::npos) << r.err;
  r = test::run_ppnet("import --reference " + model + " --run " + dir.file("x") + " --data " + data + " --class-names " +
                      dir.file("names.txt"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace ppnet
