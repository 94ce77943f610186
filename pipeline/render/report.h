#pragma once
// `ppnet report`: one self-contained HTML page about a run.
// Plain structs, no LibTorch: cli/ fills the config and prints the result (text or JSON);
// progress goes to stderr, errors are exceptions whose message names the file, option or value.

#include <string>

namespace ppnet::pipeline {

struct ReportConfig {
  std::string run;
  std::string out;  // default: RUN/report.html
};

struct ReportResult {
  std::string path;
  double accuracy = -1;  // of the latest evaluation; -1 when there is none
  std::string split;
};

/// Writes one self-contained HTML page about a run: training curves (SVG), the latest
/// evaluation, and the prototype gallery grouped by class.
ReportResult run_report(const ReportConfig& config);

}  // namespace ppnet::pipeline
