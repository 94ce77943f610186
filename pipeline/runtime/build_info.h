#pragma once
// The version line of `ppnet --version`. No LibTorch here.

#include <string>

namespace ppnet::pipeline {

/// "ppnet 0.2.0 (LibTorch 1.13.1, CPU)"-style line for --version.
std::string build_info();

}  // namespace ppnet::pipeline
