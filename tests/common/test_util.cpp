#include "tests/common/test_util.h"

#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/train.h"
#include "tests/common/fixtures.h"

#include "test_paths.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace ppnet::test {

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto p = std::filesystem::temp_directory_path() / ("ppnet-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t0] : tensors) {
    const auto t = t0.contiguous().cpu();
    const char* dtype = t.scalar_type() == torch::kFloat32   ? "F32"
                        : t.scalar_type() == torch::kFloat64 ? "F64"
                        : t.scalar_type() == torch::kInt64   ? "I64"
                                                             : nullptr;
    if (!dtype) throw std::runtime_error("write_safetensors: unsupported dtype for " + name);
    const size_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {data.size(), data.size() + bytes}}};
    data.append(static_cast<const char*>(t.data_ptr()), bytes);
  }
  const std::string h = header.dump();
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  write_file(path, out + h + data);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void train_part_model(const std::string& data, const std::filesystem::path& run) {
  for (const char* stage : {"warm", "joint"}) {
    pipeline::TrainConfig c;
    c.stage = stage;
    c.data = data;
    c.run = run.string();
    c.arch = "small";
    c.img_size = 48;
    // One prototype per class: with a single part per class, further prototypes of a class have
    // nothing left to learn and end up anywhere.
    c.prototypes_per_class = 1;
    c.prototype_dim = 32;
    c.epochs = std::string(stage) == "warm" ? 4 : 8;
    // The reference's rates, which these fixtures were tuned with (the from-scratch recipe
    // leaves one of the four high-activation boxes as the whole 48-px image).
    c.lr_backbone = 1e-4;
    c.lr_schedule = pipeline::LrSchedule::kStep;
    c.batch_size = 10;
    c.runtime.threads = 2;
    pipeline::run_train(c);
  }
}

CommandResult prepare_pattern_data(const TempDir& dir, int classes, int per_class) {
  make_pattern_folder(dir.path() / "images", classes, per_class);
  return run_ppnet("prepare --folder " + dir.file("images") + " --out " + dir.file("data") +
                   " --copies 0 --test-fraction 0.25");
}

bool wait_for_checkpoint(const std::filesystem::path& run_dir, const std::string& prefix) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const auto found = [&] {
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(run_dir / "checkpoints", ec); !ec && it != std::filesystem::directory_iterator(); ++it) {
      if (it->path().filename().string().rfind(prefix, 0) == 0) return true;
    }
    return false;
  };
  while (!found()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

CommandResult run_ppnet(const std::string& args) {
  TempDir tmp;
  const std::string out = tmp.file("out"), err = tmp.file("err");
  const std::string cmd = std::string(PPNET_BINARY) + " " + args + " </dev/null >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

int spawn(const std::vector<std::string>& argv_s, const std::string& log) {
  std::vector<std::string> copy = argv_s;
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int spawn_ppnet(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {PPNET_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(argv, log);
}

ScopedEnv::ScopedEnv(const char* name, const std::string& value) : name_(name) { setenv(name, value.c_str(), 1); }
ScopedEnv::~ScopedEnv() { unsetenv(name_); }

std::vector<std::string> durable_writes_of(const std::vector<std::string>& args, const std::string& log, int* exit_code) {
  TempDir tmp;
  const std::string points = tmp.file("points.log");
  {
    ScopedEnv env("PPNET_CRASH_LOG", points);
    *exit_code = wait_exit(spawn_ppnet(args, log));
  }
  std::vector<std::string> lines;
  std::ifstream in(points);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int run_killed_after(const std::vector<std::string>& args, size_t k, const std::string& log) {
  ScopedEnv env("PPNET_CRASH_AFTER", std::to_string(k));
  return wait_exit(spawn_ppnet(args, log));
}

std::string oracle_folder(const std::string& script, const std::string& subdir) {
  namespace fs = std::filesystem;
  const fs::path dir = subdir.empty() ? fs::path(PPNET_ORACLE_DIR) : fs::path(PPNET_ORACLE_DIR) / subdir;
  if (fs::exists(dir / "stamp")) return dir.string();
  fs::create_directories(dir);
  const int lock = open((dir.string() + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  if (lock < 0 || flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + dir.string() + ".lock");
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR + "/tests/oracle/" + script + " " + dir.string();
  const int status = fs::exists(dir / "stamp") ? 0 : std::system(cmd.c_str());
  close(lock);
  if (status != 0) throw std::runtime_error("failed: " + cmd);
  return dir.string();
}

void shared_fixture(const std::string& name, const std::filesystem::path& dest,
                    const std::function<void(const std::filesystem::path&)>& make) {
  namespace fs = std::filesystem;
  const char* cache_root = std::getenv("PPNET_TEST_CACHE");
  if (!cache_root || !*cache_root) {
    make(dest);
    return;
  }
  const fs::path cache = fs::path(cache_root) / name;
  fs::create_directories(cache_root);
  const int lock = open((cache.string() + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  if (lock < 0 || flock(lock, LOCK_EX) != 0) throw std::runtime_error("cannot lock " + cache.string() + ".lock");
  try {
    if (!fs::exists(cache / ".complete")) {
      fs::remove_all(cache);
      fs::create_directories(cache);
      make(cache);
      write_file((cache / ".complete").string(), "");
    }
  } catch (...) {
    close(lock);  // the next process tries again
    throw;
  }
  close(lock);
  fs::create_directories(dest);
  for (const auto& entry : fs::directory_iterator(cache)) {
    if (entry.path().filename() != ".complete") {
      fs::copy(entry.path(), dest / entry.path().filename(), fs::copy_options::recursive);
    }
  }
}

int wait_exit(int pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::map<std::string, torch::Tensor> run_state(const std::filesystem::path& run_dir) {
  auto run = pipeline::RunFolder::open(run_dir);
  auto net = pipeline::load_latest_model(run, torch::kCPU);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : net->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : net->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) return std::numeric_limits<double>::infinity();
  const auto a = actual.to(torch::kFloat64), e = expected.to(torch::kFloat64);
  const double scale = std::max(e.abs().max().item<double>(), 1e-12);
  return (a - e).abs().max().item<double>() / scale;
}

model::ProtoPNet small_model() {
  model::ProtoPNetOptions o;
  o.arch = "small";
  o.num_classes = 3;
  o.prototypes_per_class = 2;
  o.prototype_dim = 16;
  return model::ProtoPNet(o);
}

}  // namespace ppnet::test
