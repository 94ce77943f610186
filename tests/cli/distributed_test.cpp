// Data-parallel training on c10d/Gloo: ranks started as torchrun starts them (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), and through Debian's torchrun itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "pipeline/run/run_folder.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"
#include "test_paths.h"

namespace ppnet {
namespace {

namespace fs = std::filesystem;
using test::run_ppnet;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A loopback TCP port for the ranks' rendezvous store, reserved: the socket stays bound (not
// listening) until the test ends, so no other process can be given the port in between, while
// SO_REUSEADDR, which c10d's store sets too, lets rank 0 listen on it. Returns the port and the
// socket, or throws.
std::pair<int, int> reserve_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int on = 1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("cannot reserve a loopback port");
  }
  return {ntohs(a.sin_port), fd};
}

class Distributed : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(test::prepare_pattern_data(dir_, 3, 40).exit_code, 0); }
  void TearDown() override {
    for (const int fd : reserved_) close(fd);
  }
  std::vector<std::string> joint_args(const std::string& run, int epochs, bool resume) {
    std::vector<std::string> a = {"train", "--stage", "joint", "--data", dir_.file("data"), "--run", run,
                                  "--arch", "small", "--img-size", "28", "--prototypes-per-class", "2",
                                  "--prototype-dim", "16", "--epochs", std::to_string(epochs), "--batch-size", "8",
                                  "--checkpoint-every", "4", "--threads", "1", "--seed", "3"};
    if (resume) a.push_back("--resume");
    return a;
  }
  // Starts `ranks` processes of `args` with torchrun's variables; returns their pids.
  std::vector<int> spawn_ranks(const std::vector<std::string>& args, int ranks, const std::string& log) {
    return spawn_ranks(std::vector<std::vector<std::string>>(static_cast<size_t>(ranks), args), log);
  }
  // The same with each rank's own arguments.
  std::vector<int> spawn_ranks(const std::vector<std::vector<std::string>>& args, const std::string& log) {
    const auto [port, fd] = reserve_port();
    reserved_.push_back(fd);
    setenv("WORLD_SIZE", std::to_string(args.size()).c_str(), 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    std::vector<int> pids;
    for (size_t r = 0; r < args.size(); ++r) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      pids.push_back(test::spawn_ppnet(args[r], dir_.file(log + std::to_string(r) + ".log")));
    }
    for (const char* v : {"WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RANK"}) unsetenv(v);
    return pids;
  }
  std::string log(const std::string& name) { return test::read_file(dir_.file(name)); }
  std::map<std::string, torch::Tensor> final_state(const std::string& run_dir) { return test::run_state(run_dir); }
  nlohmann::json info(const std::string& run_dir) {
    const auto r = run_ppnet("info --run " + run_dir + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }
  test::TempDir dir_;
  std::vector<int> reserved_;  // sockets holding the ranks' ports
};

// 2 ranks × 1 thread against 1 process on the same data, seed and global batch: each rank takes
// half of every batch, so the gradients agree up to the order of the sums. Adam divides each
// gradient element by its running root mean square, so where a gradient is near zero (biases
// here) that rounding becomes a visible part of the step: measured 1.1e-4 of a tensor's scale
// after one step, 5.7e-4 after 45; the bounds are 5e-4 and 2e-3.
double weight_difference(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  double worst = 0;
  for (const auto& [name, t] : a) worst = std::max(worst, test::relative_error(b.at(name), t));
  return worst;
}

TEST_F(Distributed, TwoRanksTrainAsOneProcessDoes) {
  const auto train_both = [&](const std::string& tag, int epochs, int batch) {
    auto args = [&](const std::string& run) {
      auto a = joint_args(dir_.file(run), epochs, false);
      a[std::find(a.begin(), a.end(), "--batch-size") - a.begin() + 1] = std::to_string(batch);
      return a;
    };
    EXPECT_EQ(test::wait_exit(test::spawn_ppnet(args("one" + tag), dir_.file("one.log"))), 0) << log("one.log");
    const auto pids = spawn_ranks(args("two" + tag), 2, "two");
    for (size_t r = 0; r < pids.size(); ++r) {
      EXPECT_EQ(test::wait_exit(pids[r]), 0) << "rank " << r << ": " << log("two" + std::to_string(r) + ".log");
    }
  };
  train_both("-step", 1, 200);  // the whole train split as one batch: one step
  const double one_step = weight_difference(final_state(dir_.file("one-step")), final_state(dir_.file("two-step")));
  train_both("", 3, 8);
  // The same with a bucket per parameter (a few hundred bytes each): the sums are the same, so
  // are the weights, to the bit.
  auto tiny = joint_args(dir_.file("two-buckets"), 3, false);
  tiny.insert(tiny.end(), {"--bucket-mb", "0.0001"});
  const auto tiny_pids = spawn_ranks(tiny, 2, "buckets");
  for (const int pid : tiny_pids) EXPECT_EQ(test::wait_exit(pid), 0) << log("buckets0.log") << log("buckets1.log");
  EXPECT_TRUE(contains(log("two0.log"), "gradients summed in 1 bucket(s)")) << log("two0.log");
  EXPECT_FALSE(contains(log("buckets0.log"), "gradients summed in 1 bucket(s)")) << log("buckets0.log");
  const auto whole = final_state(dir_.file("two")), bucketed = final_state(dir_.file("two-buckets"));
  for (const auto& [name, t] : whole) EXPECT_TRUE(torch::equal(t, bucketed.at(name))) << name;
  EXPECT_TRUE(contains(log("two0.log"), "two: stage joint #1 (new run), 3 epochs")) << log("two0.log");
  EXPECT_FALSE(contains(log("two1.log"), "stage joint")) << "rank 1 reports nothing: " << log("two1.log");
  const double steps = weight_difference(final_state(dir_.file("one")), final_state(dir_.file("two")));
  std::cout << "2 ranks vs 1 process, largest weight difference relative to the tensor's scale: " << one_step
            << " after 1 step, " << steps << " after 45 steps\n";
  EXPECT_LT(one_step, 5e-4);
  EXPECT_LT(steps, 2e-3);
  EXPECT_GT(steps, 0.0) << "bit-identical: the ranks cannot have split the batches";

  const auto ea = info(dir_.file("one"))["epochs"], eb = info(dir_.file("two"))["epochs"];
  ASSERT_EQ(ea.size(), 3u);
  ASSERT_EQ(eb.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {  // reduced over the ranks before they were recorded
    EXPECT_NEAR(eb[e]["train_loss"].get<double>(), ea[e]["train_loss"].get<double>(), 1e-3) << e;
    EXPECT_NEAR(eb[e]["train_accuracy"].get<double>(), ea[e]["train_accuracy"].get<double>(), 0.02) << e;
    EXPECT_NEAR(eb[e]["eval_accuracy"].get<double>(), ea[e]["eval_accuracy"].get<double>(), 0.04) << e;
  }
}

// A rank killed with SIGKILL: the other fails at once, naming it, and --resume with the same
// number of ranks ends with the weights of an uninterrupted 2-rank run.
TEST_F(Distributed, ALostRankStopsTheOtherAndResumeContinues) {
  auto pids = spawn_ranks(joint_args(dir_.file("whole"), 6, false), 2, "whole");
  for (const int pid : pids) ASSERT_EQ(test::wait_exit(pid), 0) << log("whole0.log") << log("whole1.log");

  pids = spawn_ranks(joint_args(dir_.file("cut"), 6, false), 2, "cut");
  ASSERT_TRUE(test::wait_for_checkpoint(dir_.path() / "cut", "stage1-")) << log("cut0.log");
  kill(pids[1], SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  EXPECT_EQ(test::wait_exit(pids[1]), 128 + SIGKILL);
  const int status = test::wait_exit(pids[0]);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::cout << "rank 0 stopped " << waited << " s after rank 1 was killed\n";
  ASSERT_EQ(status, 1) << "rank 0 must fail, not finish or hang: " << log("cut0.log");
  EXPECT_TRUE(contains(log("cut0.log"), "lost contact with rank 1")) << log("cut0.log");
  EXPECT_LT(waited, 30.0);

  pids = spawn_ranks(joint_args(dir_.file("cut"), 6, true), 2, "resume");
  for (size_t r = 0; r < pids.size(); ++r) {
    ASSERT_EQ(test::wait_exit(pids[r]), 0) << "rank " << r << ": " << log("resume" + std::to_string(r) + ".log");
  }
  const auto a = final_state(dir_.file("whole")), b = final_state(dir_.file("cut"));
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  EXPECT_EQ(info(dir_.file("cut"))["stages"][0]["status"], "done");
}

// last-layer on 2 ranks: each computes half of the cached features, rank 0 solves; the same
// problem up to the features' rounding (images in other batches), so the same optimum.
TEST_F(Distributed, LastLayerFeaturesAreSplitAcrossRanks) {
  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(joint_args(dir_.file("one"), 1, false), dir_.file("one.log"))), 0)
      << log("one.log");
  ASSERT_EQ(run_ppnet("project --data " + dir_.file("data") + " --run " + dir_.file("one")).exit_code, 0);
  fs::copy(dir_.path() / "one", dir_.path() / "two", fs::copy_options::recursive);
  const std::vector<std::string> last = {"last-layer", "--data", dir_.file("data"), "--threads", "1", "--json", "--run"};
  auto args = [&](const std::string& run) {
    auto a = last;
    a.push_back(dir_.file(run));
    return a;
  };
  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(args("one"), dir_.file("ll-one.log"))), 0) << log("ll-one.log");
  const auto pids = spawn_ranks(args("two"), 2, "ll-two");
  for (size_t r = 0; r < pids.size(); ++r) {
    ASSERT_EQ(test::wait_exit(pids[r]), 0) << "rank " << r << ": " << log("ll-two" + std::to_string(r) + ".log");
  }
  EXPECT_TRUE(contains(log("ll-two0.log"), "\"solver\": \"prox\"")) << log("ll-two0.log");
  EXPECT_FALSE(contains(log("ll-two1.log"), "solver")) << "rank 1 reports nothing: " << log("ll-two1.log");
  const auto a = final_state(dir_.file("one")).at("last_layer.weight"), b = final_state(dir_.file("two")).at("last_layer.weight");
  const double diff = test::relative_error(b, a);
  std::cout << "last layer, 2 ranks vs 1 process: relative weight difference " << diff << "\n";
  EXPECT_LT(diff, 1e-3);
  EXPECT_EQ(info(dir_.file("two"))["stages"].back()["status"], "done");

  // Commands that are not data-parallel run on rank 0 alone.
  const auto infos = spawn_ranks({"info", "--run", dir_.file("two")}, 2, "info");
  for (const int pid : infos) EXPECT_EQ(test::wait_exit(pid), 0) << log("info0.log") << log("info1.log");
  EXPECT_TRUE(contains(log("info0.log"), "last_layer")) << log("info0.log");
  EXPECT_TRUE(contains(log("info1.log"), "ppnet info: runs on rank 0 only; rank 1 has nothing to do")) << log("info1.log");
}

// project and evaluate on 2 ranks: whole batches go round-robin to the ranks, so every image is
// computed in the batch one process puts it in, and the arg-min across ranks breaks ties as a
// sequential pass does: the same prototypes, records, pictures and predictions, to the bit.
TEST_F(Distributed, ProjectAndEvaluateAcrossRanksAreOneProcess) {
  ASSERT_EQ(test::wait_exit(test::spawn_ppnet(joint_args(dir_.file("one"), 1, false), dir_.file("one.log"))), 0)
      << log("one.log");
  fs::copy(dir_.path() / "one", dir_.path() / "two", fs::copy_options::recursive);
  // 90 push images in batches of 16: rank 0 takes batches 1, 3, 5, rank 1 batches 2, 4, 6 (10 images).
  auto both = [&](const std::string& tag, const std::vector<std::string>& args) {
    auto with_run = [&](const std::string& run) {
      auto a = args;
      a.insert(a.end(), {"--run", dir_.file(run), "--data", dir_.file("data"), "--threads", "1", "--batch-size", "16"});
      if (a[0] == "evaluate") a.insert(a.end(), {"--predictions-csv", dir_.file(run + ".csv")});
      return a;
    };
    EXPECT_EQ(test::wait_exit(test::spawn_ppnet(with_run("one"), dir_.file(tag + "-one.log"))), 0) << log(tag + "-one.log");
    const auto pids = spawn_ranks(with_run("two"), 2, tag + "-two");
    for (size_t r = 0; r < pids.size(); ++r) {
      EXPECT_EQ(test::wait_exit(pids[r]), 0) << "rank " << r << ": " << log(tag + "-two" + std::to_string(r) + ".log");
    }
    EXPECT_EQ(test::read_file(dir_.file(tag + "-two1.log")), "") << "rank 1 reports nothing";
  };
  both("project", {"project"});
  const auto a = final_state(dir_.file("one")), b = final_state(dir_.file("two"));
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  const auto prototypes = [&](const std::string& run) {
    const auto r = run_ppnet("info --prototypes --json --run " + dir_.file(run));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    j.erase("run");  // the folder's path
    return j;
  };
  const auto pa = prototypes("one"), pb = prototypes("two");
  ASSERT_EQ(pa["prototypes"].size(), 6u);
  EXPECT_EQ(pa, pb);
  for (const auto& p : pa["prototypes"]) {
    for (const char* png : {"patch_png", "box_png", "heatmap_png"}) {
      const std::string rel = p[png].get<std::string>();
      EXPECT_TRUE(test::read_file(dir_.file("one/" + rel)) == test::read_file(dir_.file("two/" + rel))) << rel;
    }
  }

  both("evaluate", {"evaluate"});
  EXPECT_TRUE(contains(log("evaluate-two0.log"), "accuracy")) << log("evaluate-two0.log");
  const std::string one = test::read_file(dir_.file("one.csv"));
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 31) << "a header and the 30 test images";
  EXPECT_EQ(one, test::read_file(dir_.file("two.csv")));
}

// How torchrun launches a job: `nodes` agents (each started by its own torchrun) of `per_node`
// ranks, meeting at `endpoint`, restarting the worker group up to `max_restarts` times. One node
// meets at a port the system picks (localhost:0), so tests running at once never race for one
// (--standalone's is fixed: 29400); several nodes need a port known to all (reserve_port()).
struct Launch {
  std::string job;  // --rdzv_id
  int nodes = 1, per_node = 2, max_restarts = 0;
  std::string endpoint = "localhost:0";
  std::string conf;  // --rdzv_conf
};

// Debian's torchrun (Python 3.11) fails on its default --redirects/--tee of 0; 2 (stderr) works.
std::vector<std::string> torchrun(const Launch& l, const std::vector<std::string>& args, const std::string& log_dir) {
  std::vector<std::string> a = {"torchrun", "--nnodes", std::to_string(l.nodes), "--nproc_per_node",
                                std::to_string(l.per_node), "--rdzv_backend", "c10d", "--rdzv_endpoint", l.endpoint,
                                "--rdzv_id", l.job, "--max_restarts", std::to_string(l.max_restarts), "--redirects",
                                "2", "--tee", "2", "--log_dir", log_dir};
  if (!l.conf.empty()) a.insert(a.end(), {"--rdzv_conf", l.conf});
  a.insert(a.end(), {"--no_python", PPNET_BINARY});
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

bool have_torchrun() { return std::system("command -v torchrun >/dev/null 2>&1") == 0; }

// The pid of the ppnet process that is rank `rank` of torchrun job `job` (its environment says
// so), or 0 when there is none.
int worker_pid(const std::string& job, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    std::string var;
    bool ours = false, ranked = false;
    while (std::getline(in, var, '\0')) {
      ours |= var == "TORCHELASTIC_RUN_ID=" + job;
      ranked |= var == "RANK=" + std::to_string(rank);
    }
    std::ifstream cmd(e.path() / "comm");
    std::string comm;
    std::getline(cmd, comm);
    if (ours && ranked && comm == "ppnet") return std::stoi(name);
  }
  return 0;
}

TEST_F(Distributed, TorchrunLaunchesTheRanks) {
  if (!have_torchrun()) GTEST_SKIP() << "torchrun (python3-torch) not installed";
  const std::vector<std::string> args = {"train", "--stage", "joint", "--data", dir_.file("data"), "--run", dir_.file("run"),
                                         "--arch", "small", "--img-size", "28", "--prototypes-per-class", "2",
                                         "--prototype-dim", "16", "--epochs", "1", "--batch-size", "8", "--threads", "1"};
  const std::string job = "ppnet-test-" + std::to_string(getpid()) + "-launch";
  ASSERT_EQ(test::wait_exit(test::spawn(torchrun({job}, args, dir_.file("tlog")), dir_.file("torchrun.log"))), 0)
      << log("torchrun.log");
  EXPECT_TRUE(contains(log("torchrun.log"), "stage joint #1 (new run), 1 epochs")) << log("torchrun.log");
  const auto j = info(dir_.file("run"));
  EXPECT_EQ(j["stages"][0]["status"], "done");
}

// A rank killed mid-epoch under `torchrun --max_restarts 2`: the agent restarts the worker group,
// which continues the job's stage from its last checkpoint by itself (no --resume) and ends with
// the weights of an uninterrupted run of 2 ranks, bit for bit, the epochs counted once.
TEST_F(Distributed, ATorchrunRestartContinuesTheStageByItself) {
  if (!have_torchrun()) GTEST_SKIP() << "torchrun (python3-torch) not installed";
  const std::string job = "ppnet-test-" + std::to_string(getpid()) + "-restart";
  const auto whole = torchrun({job + "-whole"}, joint_args(dir_.file("whole"), 4, false), dir_.file("whole-logs"));
  ASSERT_EQ(test::wait_exit(test::spawn(whole, dir_.file("whole.log"))), 0) << log("whole.log");

  const auto cut = torchrun({job, 1, 2, 2}, joint_args(dir_.file("cut"), 4, false), dir_.file("cut-logs"));
  const int agent = test::spawn(cut, dir_.file("cut.log"));
  ASSERT_TRUE(test::wait_for_checkpoint(dir_.path() / "cut", "stage1-")) << log("cut.log");
  const int rank1 = worker_pid(job, 1);
  ASSERT_GT(rank1, 0) << log("cut.log");
  kill(rank1, SIGKILL);
  ASSERT_EQ(test::wait_exit(agent), 0) << log("cut.log");
  EXPECT_TRUE(contains(log("cut.log"), "torchrun restart 1 of job " + job + ": stage joint #1 began in this job; continuing it"))
      << log("cut.log");
  EXPECT_FALSE(contains(log("cut.log"), "torchrun restart 2")) << log("cut.log");

  const auto a = final_state(dir_.file("whole")), b = final_state(dir_.file("cut"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  const auto j = info(dir_.file("cut"));
  ASSERT_EQ(j["stages"].size(), 1u) << j.dump();
  EXPECT_EQ(j["stages"][0]["status"], "done");
  EXPECT_EQ(j["stages"][0]["job"], job);
  EXPECT_EQ(j["epochs"].size(), 4u) << j.dump();
}

// Two torchrun agents on this machine as two nodes of one rank each, meeting at one loopback
// port: the same run as one node of 2 ranks, bit for bit. A node whose partner never comes
// gives up when the rendezvous times out (torchrun's RendezvousTimeoutError, exit 1).
TEST_F(Distributed, TwoNodesTrainAsOneNodeOfTwoRanks) {
  if (!have_torchrun()) GTEST_SKIP() << "torchrun (python3-torch) not installed";
  const std::string job = "ppnet-test-" + std::to_string(getpid()) + "-nodes";
  ASSERT_EQ(test::wait_exit(test::spawn(torchrun({job + "-one"}, joint_args(dir_.file("one"), 2, false), dir_.file("one-logs")),
                                        dir_.file("one.log"))),
            0)
      << log("one.log");
  const auto [port, fd] = reserve_port();
  reserved_.push_back(fd);
  const Launch two_nodes{job, 2, 1, 0, "127.0.0.1:" + std::to_string(port)};
  std::vector<int> agents;
  for (const std::string node : {"node0", "node1"}) {
    agents.push_back(test::spawn(torchrun(two_nodes, joint_args(dir_.file("two"), 2, false), dir_.file(node + "-logs")),
                                 dir_.file(node + ".log")));
  }
  for (size_t n = 0; n < agents.size(); ++n) {
    EXPECT_EQ(test::wait_exit(agents[n]), 0) << log("node" + std::to_string(n) + ".log");
  }
  const auto a = final_state(dir_.file("one")), b = final_state(dir_.file("two"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  EXPECT_EQ(info(dir_.file("two"))["stages"][0]["status"], "done");

  const auto started = std::chrono::steady_clock::now();
  const int lonely = test::spawn(torchrun({job + "-lonely", 2, 1, 0, "127.0.0.1:0", "join_timeout=5"},
                                          joint_args(dir_.file("lonely"), 1, false), dir_.file("lonely-logs")),
                                 dir_.file("lonely.log"));
  EXPECT_EQ(test::wait_exit(lonely), 1) << log("lonely.log");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(60));
  EXPECT_TRUE(contains(log("lonely.log"), "RendezvousTimeoutError")) << log("lonely.log");
  EXPECT_FALSE(fs::exists(dir_.path() / "lonely" / "run.sqlite"));  // no rank ever started
}

// Each node may hold its own copy of the prepared data, and only rank 0's needs the run folder:
// rank 1 reading a copy of the data and given a run folder that does not exist trains two joint
// stages (the second continuing the first's Adam state, which rank 0 sends) to the weights of
// ranks sharing both folders, bit for bit. A copy whose manifest differs is refused by the rank
// that reads it, naming its folder and both digests.
TEST_F(Distributed, ANodeNeedsACopyOfTheDataNotTheRunFolder) {
  fs::copy(dir_.path() / "data", dir_.path() / "copy", fs::copy_options::recursive);
  auto with = [&](const std::string& run, const std::string& data) {
    auto a = joint_args(run, 1, false);
    a[std::find(a.begin(), a.end(), "--data") - a.begin() + 1] = data;
    return a;
  };
  for (const std::string stage : {"1", "2"}) {
    auto pids = spawn_ranks(with(dir_.file("shared"), dir_.file("data")), 2, "shared" + stage + "-");
    for (const int pid : pids) EXPECT_EQ(test::wait_exit(pid), 0) << log("shared" + stage + "-0.log");
    pids = spawn_ranks({with(dir_.file("own"), dir_.file("data")), with(dir_.file("absent/own"), dir_.file("copy"))},
                       "own" + stage + "-");
    for (size_t r = 0; r < pids.size(); ++r) {
      EXPECT_EQ(test::wait_exit(pids[r]), 0) << log("own" + stage + "-" + std::to_string(r) + ".log");
    }
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "absent"));
  const auto a = final_state(dir_.file("shared")), b = final_state(dir_.file("own"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  EXPECT_EQ(info(dir_.file("own"))["stages"].size(), 2u);
  auto with_data = [&](const std::string& run, const std::string& data) { return with(dir_.file(run), data); };

  const fs::path manifest = dir_.path() / "copy" / "manifest.json";
  auto j = nlohmann::json::parse(test::read_file(manifest.string()));
  j["created_by"] = "another prepare";
  test::write_file(manifest.string(), j.dump());
  const auto pids = spawn_ranks({with_data("other", dir_.file("data")), with_data("other", dir_.file("copy"))}, "other");
  EXPECT_EQ(test::wait_exit(pids[1]), 1) << log("other1.log");
  EXPECT_EQ(test::wait_exit(pids[0]), 1) << log("other0.log");
  EXPECT_TRUE(contains(log("other1.log"), "rank 1: " + dir_.file("copy") + " is not rank 0's data")) << log("other1.log");
  EXPECT_TRUE(contains(log("other1.log"), "every node needs the same prepared data")) << log("other1.log");
}

}  // namespace
}  // namespace ppnet
