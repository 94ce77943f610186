// Makes a run's latest model look like one trained without flushing denormals: the smallest
// FRACTION of every weight tensor's entries become denormal floats of the same sign, as weight
// decay leaves them (the demo model trained on a machine that did not flush had 4,741 of its
// 114,064 parameters denormal: 4.2 %). Writes the checkpoint back in place. Benchmarks only.
// Usage: ppnet_bench_denormals RUN [fraction=0.042]
#include <torch/torch.h>

#include <iostream>

#include "benchmarks/denormal_weights.h"
#include "pipeline/stages/checkpoint.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: ppnet_bench_denormals RUN [fraction=0.042]\n";
    return 2;
  }
  using namespace ppnet::pipeline;
  const double fraction = argc > 2 ? std::stod(argv[2]) : 0.042;
  RunFolder run = RunFolder::open(argv[1]);
  const auto latest = run.store().latest_final_checkpoint();
  const auto path = run.absolute(latest ? latest->path : run.checkpoint_name("init"));
  ppnet::model::ProtoPNet net(to_model_options(run.model_config()));
  load_checkpoint(path, *net, torch::kCPU, nullptr, nullptr);
  int64_t total = 0;
  for (const auto& p : net->parameters()) total += p.numel();
  const int64_t denormal = ppnet::bench::make_denormal_weights(*net, fraction);
  save_checkpoint(path, *net, nullptr, nullptr);
  std::cout << path.string() << ": " << denormal << " of " << total << " parameters denormal\n";
  return denormal > 0 ? 0 : 1;
}
