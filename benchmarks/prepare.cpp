// Augmentation throughput of `ppnet prepare` at 1 and 2 threads on the same synthetic
// CUB-layout input (500×375 JPEGs, boxes over most of the image, 10 copies per operation).
// Usage: ppnet_bench_prepare [images=40]
#include <chrono>
#include <iostream>

#include "pipeline/data/prepare.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

int main(int argc, char** argv) {
  const int images = argc > 1 ? std::stoi(argv[1]) : 40;
  ppnet::test::TempDir dir;
  const auto f = ppnet::test::make_cub_fixture(dir.path() / "cub", 4, images / 4, 500, 375, ".jpg");
  double base = 0;
  for (int threads : {1, 2}) {
    ppnet::pipeline::PrepareConfig c;
    c.cub = f.root.string();
    c.out = (dir.path() / ("out" + std::to_string(threads))).string();
    c.threads = threads;
    const auto r = ppnet::pipeline::run_prepare(c);
    const double rate = static_cast<double>(r.files_written) / r.seconds;
    if (threads == 1) base = rate;
    std::cout << "prepare --threads " << threads << ": " << r.source_images << " source images, "
              << r.files_written << " files in " << r.seconds << " s = " << rate << " output images/s"
              << (threads > 1 ? " (" + std::to_string(rate / base) + "x)" : std::string()) << '\n';
  }
}
