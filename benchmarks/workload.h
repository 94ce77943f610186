#pragma once
// The arguments the model benchmarks share — [arch=vgg16] [img_size=224] [batch] [threads=2]
// [iterations=3] — and the runtime started with those threads.
#include <string>

#include "pipeline/runtime/runtime.h"
#include "pipeline/runtime/runtime_config.h"

namespace ppnet::bench {

struct ModelWorkload {
  std::string arch;
  int img_size, batch, threads, iterations;
};

inline ModelWorkload start_model_workload(int argc, char** argv, int default_batch) {
  const auto number = [&](int i, int fallback) { return argc > i ? std::stoi(argv[i]) : fallback; };
  ModelWorkload w{argc > 1 ? argv[1] : "vgg16", number(2, 224), number(3, default_batch), number(4, 2), number(5, 3)};
  pipeline::RuntimeConfig rc;
  rc.threads = w.threads;
  pipeline::start_runtime(rc);
  return w;
}

}  // namespace ppnet::bench
