#pragma once
// Helpers shared by ppnet's tests: scratch folders, a safetensors writer for fixtures, and
// running the real ppnet binary.

#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/protopnet.h"

namespace ppnet::test {

/// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// Writes `tensors` as a well-formed .safetensors file (F32/F64/I64 only).
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs the built ppnet binary with `args` (shell-quoted here), capturing both streams.
CommandResult run_ppnet(const std::string& args);

/// `dir`/data prepared by `ppnet prepare --folder` from a generated pattern folder
/// (fixtures.h's make_pattern_folder, in `dir`/images) of `classes` × `per_class` images, a
/// quarter of them test images.
CommandResult prepare_pattern_data(const TempDir& dir, int classes, int per_class);

/// Trains warm (4 epochs) then joint (8) of the small part-finding model — 48 px, one 32-channel
/// prototype per class, the reference's rates — on the prepared `data` into `run`: the model the
/// part tests (project_test's Interpretable, audit_test's Audit) share.
void train_part_model(const std::string& data, const std::filesystem::path& run);

/// Sets an environment variable for the processes a test starts, unset again on destruction.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

/// Runs the built ppnet binary with `args` and PPNET_CRASH_LOG set; returns the durable writes
/// it made, one "N kind path" line each (base/crash_point.h), and its exit code in `exit_code`.
std::vector<std::string> durable_writes_of(const std::vector<std::string>& args, const std::string& log, int* exit_code);

/// Runs the built ppnet binary with `args`, killed by PPNET_CRASH_AFTER=`k` right after its k-th
/// durable write; returns its exit code (128 + SIGKILL when the kill came).
int run_killed_after(const std::vector<std::string>& args, size_t k, const std::string& log);

/// Fills `dest` with what `make(folder)` writes into an empty folder. Under ctest (which sets
/// PPNET_TEST_CACHE and empties it at the start of every run) the first process to ask makes it
/// once, under a lock, into PPNET_TEST_CACHE/`name`, and every process copies that: a suite's
/// model is trained once per test run rather than once per test process. Without the variable
/// (a test binary run by hand) `make(dest)` runs here.
void shared_fixture(const std::string& name, const std::filesystem::path& dest,
                    const std::function<void(const std::filesystem::path&)>& make);

/// The folder `script` (make_oracle.py or make_reference.py in tests/oracle/) writes its files
/// into: `subdir` of the build's oracle folder. ctest's fixtures oracle.generate and
/// oracle.reference make it before any e2e test; a test binary run by hand runs the script once
/// (under a lock) when the folder has no stamp yet.
std::string oracle_folder(const std::string& script, const std::string& subdir);

/// Starts `argv` (argv[0] looked up in PATH) in the background, stdout and stderr to `log`;
/// returns its pid.
int spawn(const std::vector<std::string>& argv, const std::string& log);
/// Starts the built ppnet binary with `args` in the background (output to `log`); returns its pid.
int spawn_ppnet(const std::vector<std::string>& args, const std::string& log);

/// Polls (every millisecond, up to a minute) until `run_dir`/checkpoints holds a file whose name
/// starts with `prefix` (say "stage1-"); false if none came.
bool wait_for_checkpoint(const std::filesystem::path& run_dir, const std::string& prefix);

/// Waits for a spawned process; returns its exit code, or 128 + signal if a signal ended it.
int wait_exit(int pid);

/// The parameters and buffers of the model a run's latest finished stage left, by name.
std::map<std::string, torch::Tensor> run_state(const std::filesystem::path& run_dir);

/// A ProtoPNet of the `small` backbone with 3 classes × 2 prototypes of 16 channels: seconds to
/// build and run.
model::ProtoPNet small_model();

/// max |a − b| / max(max |b|, 1e-12): the error relative to the expected output's scale.
double relative_error(const torch::Tensor& actual, const torch::Tensor& expected);

}  // namespace ppnet::test
