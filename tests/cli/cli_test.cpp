// The real ppnet binary, as a shell or Makefile runs it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "model/backbone.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

using test::run_ppnet;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Cli, HelpListsEveryCommand) {
  const auto r = run_ppnet("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* c : {"prepare", "train", "project", "last-layer", "analyze", "prune", "forbid", "remember", "explain",
                        "evaluate", "info", "report", "weights", "import", "export", "completion"}) {
    EXPECT_TRUE(contains(r.out, std::string("  ") + c + " ")) << c;
  }
  EXPECT_EQ(run_ppnet("help").out, r.out);
}

TEST(Cli, VersionNamesPpnetAndLibTorch) {
  const auto r = run_ppnet("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("ppnet 0.2.0 (LibTorch ", 0), 0u) << r.out;
}

TEST(Cli, NoCommandIsAUsageError) {
  const auto r = run_ppnet("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "Usage: ppnet <command>"));
  EXPECT_EQ(r.out, "");
}

TEST(Cli, EveryCommandHasHelpWithTheAgreedOptions) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"prepare", {"--cub", "--folder", "--idx", "--out", "--copies", "--val-fraction", "--threads", "--seed"}},
      {"train", {"--stage", "--data", "--run", "--arch", "--img-size", "--epochs", "--batch-size",
                 "--prototypes-per-class", "--weights", "--resume", "--threads", "--seed", "--device"}},
      {"project", {"--data", "--run", "--threads", "--device"}},
      {"last-layer", {"--data", "--run", "--epochs", "--threads", "--seed", "--device"}},
      {"explain", {"--run", "--dir", "--out", "--top-k", "--threads", "--device"}},
      {"evaluate", {"--run", "--data", "--split", "--json", "--threads", "--device", "--metrics", "--part-box"}},
      {"analyze", {"--run", "--data", "--split", "--k", "--json", "--threads", "--device"}},
      {"prune", {"--run", "--data", "--k", "--threshold", "--duplicates", "--dry-run", "--json", "--threads"}},
      {"forbid", {"--run", "--prototype", "--image", "--box", "--class", "--remove", "--json"}},
      {"remember", {"--run", "--prototype", "--image", "--box", "--class", "--remove", "--json"}},
      {"info", {"--run", "--prototypes", "--concepts", "--json"}},
      {"report", {"--run", "--out"}},
      {"weights", {"--arch", "--weights", "--json", "--threads"}},
      {"import", {"--reference", "--run", "--data", "--class-names", "--arch", "--img-size", "--activation", "--json"}},
      {"export", {"--run", "--out", "--format", "--names", "--json"}},
  };
  for (const auto& [cmd, options] : expected) {
    const auto r = run_ppnet(cmd + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_TRUE(contains(r.out, "Usage: ppnet " + cmd)) << cmd;
    for (const auto& o : options) EXPECT_TRUE(contains(r.out, o + " ")) << cmd << " lacks " << o;
    EXPECT_TRUE(contains(r.out, "--config FILE")) << cmd;
    EXPECT_EQ(run_ppnet("help " + cmd).out, r.out);
  }
}

TEST(Cli, UsageMistakesExitTwoWithAHint) {
  struct Case {
    const char* args;
    const char* message;
  };
  for (const Case& c : {Case{"frobnicate", "unknown command 'frobnicate'"},
                        Case{"--frob", "unknown option '--frob'"},
                        Case{"project --frob 3", "unrecognised option '--frob'"},
                        Case{"train --threads many", "--threads"},
                        Case{"train --stage hot", "--stage 'hot': expected warm or joint"},
                        Case{"evaluate --split dev", "--split 'dev'"},
                        Case{"evaluate --run r --data d --metrics pointing,charm", "unknown metric 'charm'"},
                        Case{"evaluate --run r --data d --part-box 2", "--part-box must be in [0, 1]"},
                        Case{"evaluate --run r --data d --noise nan", "--noise must be a finite number"},
                        Case{"analyze --run r --data d --k 0", "--k must be in 1…1000"},
                        Case{"analyze --run r --data d --split dev", "--split 'dev': expected push, test, val or train"},
                        Case{"analyze --data d", "missing --run"},
                        Case{"prune --run r --data d --threshold 0", "nothing to do: --threshold 0 without --duplicates"},
                        Case{"prune --run r --data d --k 4 --threshold 5", "--threshold must be in 0…K"},
                        Case{"prepare --idx x --parts p --out o", "--parts goes with --folder"},
                        Case{"prepare --idx x --out o --val-fraction nan", "--val-fraction must be in [0, 1)"},
                        Case{"prepare --idx x --out o --rotation inf", "augmentation ranges"},
                        Case{"prepare --idx x --out o --skew nan", "augmentation ranges"},
                        Case{"train --stage joint --data d --run r --lr-prototypes nan", "--lr-prototypes must be a number in (0, 100]"},
                        Case{"train --stage joint --data d --run r --lr-backbone inf", "--lr-backbone must be a number in (0, 100]"},
                        Case{"train --stage joint --data d --run r --lr-add-on -0.1", "--lr-add-on must be a number in (0, 100]"},
                        Case{"train --stage joint --data d --run r --cluster -1e300", "--cluster must be a number in [-1000, 1000]"},
                        Case{"train --stage joint --data d --run r --separation nan", "--separation must be a number in [-1000, 1000]"},
                        Case{"train --stage joint --data d --run r --weight-decay 1e9", "--weight-decay must be a number in [0, 1000]"},
                        Case{"last-layer --data d --run r --lr nan", "--lr must be a number in (0, 100]"},
                        Case{"last-layer --data d --run r --l1 inf", "--l1 must be a number in [0, 1000]"},
                        Case{"weights --arch small --weights w --threads 100000", "--threads must be 0 (all cores) or 1…1024"},
                        Case{"weights --arch small --weights w --device tpu", "--device 'tpu'"},
                        Case{"weights --arch small", "missing --weights"},
                        Case{"explain --run r --dir d --out o --shard 2/2", "--shard '2/2': expected I/N"},
                        Case{"explain --run r --dir d --out o --shard 0/99999999999", "--shard '0/99999999999'"},
                        Case{"info stray", "positional"},
                        Case{"info --run r --prototypes --concepts", "give --prototypes or --concepts, not both"},
                        Case{"forbid --run r", "give one of --prototype J [--box x0,y0,x1,y1], --image FILE --box x0,y0,x1,y1, or --remove ID"},
                        Case{"forbid --run r --prototype 1 --remove 2", "give one of --prototype J"},
                        Case{"remember --run r --image i.png", "missing --box"},
                        Case{"forbid --run r --image i.png --box 1,2,3", "--box '1,2,3': expected x0,y0,x1,y1"},
                        Case{"forbid --run r --image i.png --box 1,2,3,4x", "--box '1,2,3,4x': expected x0,y0,x1,y1"},
                        Case{"forbid --run r --prototype -1", "--prototype must be at least 0"},
                        Case{"forbid --run r --remove 3 --class all", "--remove takes no --class or --data"},
                        Case{"forbid --run r --image i.png --box 0,0,1,1 --data d", "--data goes with --prototype"},
                        Case{"train --stage joint --data d --run r --forget -1", "--forget must be a number in [0, 1e6]"},
                        Case{"train --stage joint --data d --run r --remember nan", "--remember must be a number in [0, 1e6]"}}) {
    const auto r = run_ppnet(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args;
    EXPECT_TRUE(contains(r.err, c.message)) << c.args << ": " << r.err;
    EXPECT_TRUE(contains(r.err, "--help'")) << c.args << ": " << r.err;
  }
}

class CliWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    auto net = model::make_backbone("small");
    std::map<std::string, torch::Tensor> state;
    for (const auto& p : net->named_parameters()) state[p.key()] = p.value().detach();
    for (const auto& b : net->named_buffers()) state[b.key()] = b.value();
    tensors_ = static_cast<int64_t>(state.size());
    weights_ = dir_.file("small.safetensors");
    test::write_safetensors(weights_, state);
  }
  test::TempDir dir_;
  std::string weights_;
  int64_t tensors_ = 0;
};

TEST_F(CliWeights, ReportsAFittingFile) {
  const auto r = run_ppnet("weights --arch small --weights " + weights_ + " --img-size 28");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "fits small")) << r.out;
  EXPECT_TRUE(contains(r.out, "128×7×7 at 28×28 px")) << r.out;
}

TEST_F(CliWeights, JsonReportAndThreads) {
  auto r = run_ppnet("weights --arch small --weights " + weights_ + " --json --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tensors_loaded"].get<int64_t>(), tensors_);
  EXPECT_EQ(j["format"], "safetensors");
  EXPECT_EQ(j["threads"], 1);
  r = run_ppnet("weights --arch small --weights " + weights_ + " --json");
  EXPECT_EQ(nlohmann::json::parse(r.out)["threads"].get<unsigned>(), std::thread::hardware_concurrency());
}

TEST_F(CliWeights, WrongArchitectureFailsNamingTheFile) {
  const auto r = run_ppnet("weights --arch vgg11 --weights " + weights_);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, weights_ + ": not weights for vgg11")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CliWeights, OptionsFromAConfigFileWithTheCommandLineWinning) {
  const std::string cfg = dir_.file("ppnet.cfg");
  test::write_file(cfg, "# weights check\narch = resnet50\nweights = " + weights_ + "\nimg-size = 28\n");
  auto r = run_ppnet("weights --config " + cfg + " --arch small --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["arch"], "small");
  EXPECT_EQ(j["img_size"], 28);

  test::write_file(cfg, "arch = small\nweights = " + weights_ + "\nepochs = 3\n");
  r = run_ppnet("weights --config " + cfg);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "config file " + cfg + ", line 3")) << r.err;

  r = run_ppnet("weights --config " + dir_.file("absent.cfg"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "absent.cfg")) << r.err;
}

}  // namespace
}  // namespace ppnet
