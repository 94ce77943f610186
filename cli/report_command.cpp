// ppnet report: one self-contained HTML page of a run.
#include <iostream>

#include "cli/command.h"
#include "pipeline/render/report.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::ReportConfig c;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("out", po::value(&c.out)->value_name("FILE"), "where to write the page (default RUN/report.html)");
  if (!o.parse()) return 0;
  o.require({"run"});
  const auto r = pipeline::run_report(c);
  if (r.accuracy >= 0) std::cout << r.split << " accuracy " << r.accuracy << '\n';
  std::cout << "report: " << r.path << '\n';
  return 0;
}

}  // namespace

extern const Command kReportCommand = {"report", "one self-contained HTML page: training curves, evaluation, prototypes",
                                "ppnet report --run RUN [--out FILE]",
    "ppnet report --run runs/cub\nppnet report --run runs/cub --out cub-report.html", false, &run};

}  // namespace ppnet::cli
