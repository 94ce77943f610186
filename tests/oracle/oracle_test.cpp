// ppnet against an independent oracle: torchvision and the reference formulas computed by
// Debian's python3-torch (tests/oracle/make_oracle.py, run by ctest as the fixture
// "oracle.generate").
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "model/last_layer_solver.h"
#include "model/loss.h"
#include "model/protopnet.h"
#include "pipeline/formats/safetensors.h"
#include "pipeline/formats/torch_pickle.h"
#include "pipeline/formats/weights_file.h"
#include "tests/common/test_util.h"
#include "test_paths.h"

namespace ppnet {
namespace {

constexpr double kTolerance = 1e-4;  // of the expected output's largest magnitude

std::string oracle(const std::string& name) {
  static const std::string dir = test::oracle_folder("make_oracle.py", "");
  return dir + "/" + name;
}

struct BackboneCase {
  std::string arch;
  std::string extension;
};

void PrintTo(const BackboneCase& c, std::ostream* os) { *os << c.arch << '.' << c.extension; }

class OracleBackbone : public ::testing::TestWithParam<BackboneCase> {};

TEST_P(OracleBackbone, LoadsTheFileAndMatchesTorchvision) {
  torch::set_num_threads(2);
  const auto& [arch, extension] = GetParam();
  auto net = model::make_backbone(arch);
  pipeline::WeightsFormat format;
  const auto report = pipeline::load_backbone_weights(*net, oracle(arch + "." + extension), &format);
  EXPECT_EQ(format, extension == "pth" ? pipeline::WeightsFormat::kTorchSaveZip
                                       : pipeline::WeightsFormat::kSafetensors);
  EXPECT_GT(report.loaded, 0);
  net->eval();
  torch::NoGradGuard no_grad;
  const auto x = pipeline::read_safetensors(oracle("input.safetensors")).at("x");
  const auto expected = pipeline::read_safetensors(oracle(arch + "_out.safetensors")).at("y");
  const auto y = net->forward(x);
  ASSERT_EQ(y.sizes(), expected.sizes());
  EXPECT_LE(test::relative_error(y, expected), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Torchvision, OracleBackbone,
    ::testing::Values(BackboneCase{"vgg16", "pth"}, BackboneCase{"vgg16", "safetensors"},
                      BackboneCase{"resnet34", "pth"}, BackboneCase{"resnet34", "safetensors"},
                      BackboneCase{"resnet50", "pth"}, BackboneCase{"resnet50", "safetensors"},
                      BackboneCase{"densenet121", "pth"}, BackboneCase{"densenet121", "safetensors"}),
    [](const auto& info) { return info.param.arch + "_" + info.param.extension; });

TEST(OracleWeights, VariantsAreReadAsTheyWereWritten) {
  // resnet34.pth: {"epoch": 3, "state_dict": OrderedDict("module." + key)} with fc kept.
  const auto r34 = pipeline::read_weights_file(oracle("resnet34.pth"));
  EXPECT_EQ(r34.count("module.conv1.weight"), 1u);
  // resnet50.safetensors has no num_batches_tracked: loading reports them as defaulted.
  auto net = model::make_backbone("resnet50");
  const auto report = pipeline::load_backbone_weights(*net, oracle("resnet50.safetensors"));
  EXPECT_EQ(report.defaulted.size(), 53u);
  EXPECT_EQ(report.ignored, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  // Both formats of the same weights hold identical tensors.
  const auto a = pipeline::read_weights_file(oracle("vgg16.pth"));
  const auto b = pipeline::read_weights_file(oracle("vgg16.safetensors"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
}

std::string load_error(const std::string& path) {
  try {
    pipeline::read_weights_file(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// legacy.pth: torch.save(..., _use_new_zipfile_serialization=False) of a non-contiguous view (its
// whole storage is saved, with the view's offset and strides) and an integer tensor.
TEST(OracleWeights, LegacyFileIsReadAsTorchLoadReadsIt) {
  const auto got = pipeline::read_weights_file(oracle("legacy.pth"));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(torch::equal(got.at("w"), torch::arange(6, torch::kFloat32).reshape({2, 3}).slice(1, 1)));
  EXPECT_TRUE(got.at("w").is_contiguous());
  EXPECT_TRUE(torch::equal(got.at("n"), torch::tensor({1, 2}, torch::kInt64)));
  // Cut short, it is refused naming the file.
  test::TempDir dir;
  const std::string bytes = test::read_file(oracle("legacy.pth"));
  test::write_file(dir.file("cut.pth"), bytes.substr(0, bytes.size() - 5));
  const std::string msg = load_error(dir.file("cut.pth"));
  EXPECT_NE(msg.find(dir.file("cut.pth")), std::string::npos) << msg;
  EXPECT_NE(msg.find("ends inside storage"), std::string::npos) << msg;
}

TEST(OracleWeights, OtherPythonObjectsAndDamagedArchivesAreRefused) {
  EXPECT_NE(load_error(oracle("counter.pth")).find("collections.Counter"), std::string::npos);
  test::TempDir dir;
  const std::string bytes = test::read_file(oracle("vgg16.pth"));
  test::write_file(dir.file("cut.pth"), bytes.substr(0, bytes.size() / 2));
  const std::string msg = load_error(dir.file("cut.pth"));
  EXPECT_NE(msg.find(dir.file("cut.pth")), std::string::npos) << msg;
}

class OracleHead : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleHead, MatchesTheReferenceFormulas) {
  const auto t = pipeline::read_safetensors(oracle("head_" + GetParam() + ".safetensors"));
  const auto& protos = t.at("prototype_vectors");
  const auto& weight = t.at("last_layer.weight");
  model::ProtoPNetOptions o;
  o.arch = "small";  // 128 channels, as the fixture's features
  o.num_classes = weight.size(0);
  o.prototypes_per_class = protos.size(0) / o.num_classes;
  o.prototype_dim = protos.size(1);
  o.add_on = model::parse_add_on_type(GetParam());
  model::ProtoPNet net(o);
  {
    torch::NoGradGuard no_grad;
    int copied = 0;
    for (auto& p : net->named_parameters()) {
      if (auto it = t.find(p.key()); it != t.end()) {
        ASSERT_EQ(p.value().sizes(), it->second.sizes()) << p.key();
        p.value().copy_(it->second);
        ++copied;
      }
    }
    EXPECT_EQ(copied, static_cast<int>(net->add_on_layers()->parameters().size()) + 2);
  }
  const auto& features = t.at("features");
  const auto out = net->head(features);
  const auto distances = net->distances(net->add_on_layers()->forward(features));
  EXPECT_LE(test::relative_error(distances, t.at("out.distances")), kTolerance);
  EXPECT_LE(test::relative_error(out.min_distances, t.at("out.min_distances")), kTolerance);
  EXPECT_LE(test::relative_error(model::similarity_from_distance(out.min_distances), t.at("out.similarities")),
            kTolerance);
  EXPECT_LE(test::relative_error(out.logits, t.at("out.logits")), kTolerance);

  const auto terms = model::compute_loss_terms(out.logits, out.min_distances, t.at("labels"),
                                               net->prototype_class_identity(),
                                               net->last_layer()->weight, net->max_distance());
  EXPECT_LE(test::relative_error(terms.cross_entropy, t.at("out.cross_entropy")), kTolerance);
  EXPECT_LE(test::relative_error(terms.cluster, t.at("out.cluster")), kTolerance);
  EXPECT_LE(test::relative_error(terms.separation, t.at("out.separation")), kTolerance);
  EXPECT_LE(test::relative_error(terms.avg_separation, t.at("out.avg_separation")), kTolerance);
  EXPECT_LE(test::relative_error(terms.l1, t.at("out.l1")), kTolerance);
  EXPECT_LE(test::relative_error(model::total_loss(terms, {}), t.at("out.total")), kTolerance);
  EXPECT_LE(test::relative_error(model::mean_pairwise_prototype_distance(net->prototype_vectors()),
                                 t.at("out.pairwise")),
            kTolerance);
}

INSTANTIATE_TEST_SUITE_P(AddOn, OracleHead, ::testing::Values("regular", "bottleneck"));

// The last layer's convex problem solved by the oracle's own proximal gradient, far past
// ppnet's tolerance: the same minimum, the same weights, the same off-class zeros.
class OracleLastLayer : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleLastLayer, ProxSolverFindsTheOraclesMinimum) {
  torch::set_num_threads(2);
  const auto t = pipeline::read_safetensors(oracle("last_layer_" + GetParam() + ".safetensors"));
  const double l1 = t.at("lambda").item<double>();
  for (const auto method : {model::ProxMethod::kFista, model::ProxMethod::kNewton}) {
    SCOPED_TRACE(model::prox_method_name(method));
    model::ProxOptions options;
    options.tolerance = 1e-7;
    options.method = method;
    const auto r = model::solve_last_layer_prox(t.at("similarities"), t.at("labels"), t.at("identity"),
                                                t.at("initial_weight"), l1, options);
    ASSERT_TRUE(r.converged) << "residual " << r.final.residual;
    EXPECT_NEAR(r.initial.objective, t.at("initial_objective").item<double>(), 1e-6);
    EXPECT_NEAR(r.final.objective, t.at("objective").item<double>(), 1e-9);
    const auto expected = t.at("weight");
    // The minimiser is not unique: the cross-entropy ignores a shift of a prototype's weights to
    // every class, and the L1 does too where its off-class weights have opposite signs. What the
    // optima share is what they predict: the class probabilities of the problem's images.
    const auto s = t.at("similarities").to(torch::kFloat64);
    const auto log_p = s.mm(r.weight.to(torch::kFloat64).t()).log_softmax(1);
    const auto expected_log_p = s.mm(expected.t()).log_softmax(1);
    EXPECT_LE((log_p - expected_log_p).pow(2).mean().sqrt().item<double>(), 1e-3);
    const auto off = (1 - t.at("identity").t()) > 0;
    EXPECT_TRUE(torch::equal(r.weight.eq(0) & off, expected.eq(0) & off)) << r.weight << expected;
  }
}

INSTANTIATE_TEST_SUITE_P(Lambda, OracleLastLayer, ::testing::Values("reference_l1", "sparse"));

}  // namespace
}  // namespace ppnet
