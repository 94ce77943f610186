#include <chrono>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "pipeline/atomic_file.h"
#include "pipeline/commands.h"
#include "pipeline/html.h"
#include "pipeline/run_folder.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string base64(const std::vector<uchar>& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t{in[i]} << 16;
    if (i + 1 < in.size()) v |= uint32_t{in[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// An image file as a small inline thumbnail (the report is one self-contained file).
std::string thumbnail(const fs::path& file, int side = 80) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return "";  // pictures not written (project --no-images)
  cv::Mat img = cv::imread(file.string(), cv::IMREAD_COLOR);
  if (img.empty()) return "";
  // Scaled to `side` pixels on its longer edge: small images (28 px) grow, with visible pixels.
  const double s = static_cast<double>(side) / std::max(img.cols, img.rows);
  cv::resize(img, img, cv::Size(), s, s, s < 1.0 ? cv::INTER_AREA : cv::INTER_NEAREST);
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  return "<img src=\"data:image/png;base64," + base64(buf) + "\" alt=\"\">";
}

// One line chart, as inline SVG: series of (x, y) with a legend; stage boundaries as rules.
std::string chart(const std::string& title, const std::vector<std::pair<std::string, std::vector<double>>>& series,
                  const std::vector<std::pair<size_t, std::string>>& stages) {
  constexpr double kW = 460, kH = 220, kL = 50, kR = 10, kT = 24, kB = 28;
  double lo = 1e300, hi = -1e300;
  size_t n = 0;
  for (const auto& [_, ys] : series) {
    for (double y : ys) lo = std::min(lo, y), hi = std::max(hi, y);
    n = std::max(n, ys.size());
  }
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH << "\" font-size=\"11\">"
    << "<text x=\"" << kL << "\" y=\"14\" font-weight=\"bold\">" << html_escape(title) << "</text>";
  if (n == 0) return s.str() + "<text x=\"60\" y=\"100\">no epochs yet</text></svg>";
  if (hi - lo < 1e-12) hi = lo + 1;
  auto X = [&](size_t i) { return kL + (kW - kL - kR) * (n > 1 ? static_cast<double>(i) / (n - 1) : 0.5); };
  auto Y = [&](double v) { return kT + (kH - kT - kB) * (1 - (v - lo) / (hi - lo)); };
  s << "<rect x=\"" << kL << "\" y=\"" << kT << "\" width=\"" << kW - kL - kR << "\" height=\"" << kH - kT - kB
    << "\" fill=\"none\" stroke=\"#ccc\"/>"
    << "<text x=\"2\" y=\"" << Y(hi) + 4 << "\">" << hi << "</text><text x=\"2\" y=\"" << Y(lo) << "\">" << lo << "</text>";
  for (size_t b = 0; b < stages.size(); ++b) {  // labels alternate in height so that neighbours do not overlap
    const auto& [at, name] = stages[b];
    s << "<line x1=\"" << X(at) << "\" x2=\"" << X(at) << "\" y1=\"" << kT << "\" y2=\"" << kH - kB
      << "\" stroke=\"#bbb\" stroke-dasharray=\"3,3\"/><text x=\"" << X(at) + 2 << "\" y=\""
      << kT + 12 + 12 * static_cast<double>(b % 2) << "\" fill=\"#777\">" << html_escape(name) << "</text>";
  }
  static const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
  size_t k = 0;
  for (const auto& [name, ys] : series) {
    s << "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" << kColours[k % 5] << "\" points=\"";
    for (size_t i = 0; i < ys.size(); ++i) s << X(i) << ',' << Y(ys[i]) << ' ';
    s << "\"/><text x=\"" << kL + 8 + 110 * k << "\" y=\"" << kH - 2 << "\" fill=\"" << kColours[k % 5] << "\">"
      << html_escape(name) << "</text>";
    ++k;
  }
  return s.str() + "</svg>";
}

// The interpretability metrics of every evaluation that measured them, latest first.
std::string interpretability_section(const std::vector<db::EvaluationRow>& evals, const std::string& run_name) {
  std::ostringstream h;
  h << "<h2>Interpretability</h2>";
  std::vector<std::pair<const db::EvaluationRow*, json>> measured;
  for (auto it = evals.rbegin(); it != evals.rend(); ++it) {
    const json d = json::parse(it->details_json);
    if (d.contains("metrics")) measured.emplace_back(&*it, d["metrics"]);
  }
  if (measured.empty()) {
    h << "<p>not measured yet: <code>ppnet evaluate --run " << html_escape(run_name)
      << " --data DATA --metrics all</code> (part metrics need part annotations)</p>";
  } else {
    static const char* const kNames[] = {"consistency", "stability", "pointing", "purity"};
    h << "<p>Part metrics (README, &ldquo;Auditing a model&rdquo;): 0 to 1, higher is better; sparsity: share of "
         "last-layer weights exactly 0 and distinct projected patches.</p><table><tr><th>evaluated</th><th>split</th>"
         "<th>model</th>";
    for (const char* n : kNames) h << "<th>" << n << "</th>";
    h << "<th>zero weights</th><th>distinct patches</th></tr>";
    for (const auto& [e, m] : measured) {
      h << "<tr><td>" << e->created << "</td><td>" << html_escape(e->split) << "</td><td>" << html_escape(e->checkpoint)
        << "</td>";
      for (const char* n : kNames) {
        if (!m.contains(n) || m[n]["value"].get<double>() < 0) {
          h << "<td>&ndash;</td>";
          continue;
        }
        const double v = m[n]["value"].get<double>();
        h << "<td><div style=\"background:linear-gradient(90deg,rgba(31,119,180,.5) " << 100 * v << "%,transparent 0)\">"
          << std::fixed << std::setprecision(3) << v << std::defaultfloat << "</div></td>";
      }
      if (m.contains("sparsity")) {
        h << "<td>" << m["sparsity"]["zero_weights"].get<double>() << "</td><td>" << m["sparsity"]["distinct_patches"]
          << " of " << m["sparsity"]["prototypes"] << "</td>";
      } else {
        h << "<td>&ndash;</td><td>&ndash;</td>";
      }
      h << "</tr>";
    }
    h << "</table>";
  }
  return h.str();
}

// The latest analysis: each prototype's projected patch next to its nearest patches. Those are
// linked rather than embedded (k per prototype would make the page huge), relative to the page.
std::string nearest_patches_section(RunFolder& run, const std::vector<std::string>& class_names,
                                    const fs::path& page_dir) {
  std::ostringstream h;
  h << "<h2>Nearest patches</h2>";
  const auto analysis = run.store().latest_analysis();
  if (!analysis) {
    h << "<p>not analysed yet: <code>ppnet analyze --run RUN --data DATA</code></p>";
    return h.str();
  }
  h << "<p>analysis #" << analysis->id << " (" << analysis->created << "): the " << analysis->k << " nearest "
    << html_escape(analysis->split) << " patches of each prototype of " << html_escape(analysis->checkpoint)
    << ", one per image, nearest first; a red caption marks another class.</p>";
  const auto projection = analysis->projection;
  std::map<int64_t, std::vector<db::NearestPatchRow>> by_prototype;
  for (auto& r : run.store().nearest_patches(analysis->id)) by_prototype[r.prototype].push_back(std::move(r));
  std::map<int64_t, int64_t> class_of;
  if (projection) {
    for (const auto& p : run.store().prototypes(*projection)) class_of[p.prototype] = p.class_index;
  }
  for (const auto& [j, rows] : by_prototype) {
    h << "<div class=\"n\"><b>#" << j << "</b>";
    const auto cls = class_of.find(j);
    if (cls != class_of.end()) h << " " << html_escape(class_names.at(static_cast<size_t>(cls->second)));
    h << "<br>";
    if (projection) {
      h << thumbnail(run.dir() / "prototypes" / std::to_string(*projection) / (std::to_string(j) + "-patch.png"), 64);
    }
    for (const auto& r : rows) {
      const bool other = cls != class_of.end() && r.class_index != cls->second;
      h << "<figure><img height=\"64\" alt=\"\" src=\"";
      if (!analysis->pictures.empty()) {
        const fs::path png = run.dir() / analysis->pictures / (std::to_string(j) + "-" + std::to_string(r.rank) + "-patch.png");
        h << html_escape(url_path(fs::relative(png, page_dir).generic_string()));
      }
      h << "\"><figcaption" << (other ? " style=\"color:#c00\"" : "") << ">"
        << html_escape(class_names.at(static_cast<size_t>(r.class_index))) << " " << std::setprecision(3) << r.similarity
        << std::setprecision(6) << "</figcaption></figure>";
    }
    h << "</div>";
  }
  return h.str();
}

}  // namespace

ReportResult run_report(const ReportConfig& c) {
  RunFolder run = RunFolder::open(c.run);
  if (!c.out.empty()) run.check_output(c.out);
  db::RunStore& store = run.store();
  const auto r = *store.run();
  const json manifest = json::parse(r.data_manifest);
  std::vector<std::string> class_names;
  for (const auto& cls : manifest.at("classes")) class_names.push_back(cls.at("name").get<std::string>());

  std::ostringstream h;
  h << "<!doctype html><meta charset=\"utf-8\"><title>ppnet run " << html_escape(c.run) << "</title><style>"
    << "body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}td,th{border:1px solid #ddd;"
       "padding:3px 6px;font-size:12px}.p{display:inline-block;margin:4px;text-align:center;font-size:11px}"
       ".n{margin:6px 0}.n figure{display:inline-block;margin:2px;text-align:center;font-size:11px}"
       "svg{margin:6px;border:1px solid #eee}</style>"
    << "<h1>Run " << html_escape(c.run) << "</h1><p>model " << html_escape(r.model_json) << "<br>data " << html_escape(r.data_path)
    << "<br>created " << html_escape(r.created) << " by " << html_escape(r.ppnet_version) << "</p>";

  // Training curves across every stage, one point per epoch.
  const auto stages = store.stages();
  const auto epochs = store.epochs();
  std::map<int64_t, std::string> kind_of;
  for (const auto& s : stages) kind_of[s.id] = s.kind + " #" + std::to_string(s.id);
  std::vector<double> loss, ce, cluster, sep, train_acc, eval_acc;
  std::vector<std::pair<size_t, std::string>> boundaries;
  int64_t last_stage = -1;
  for (const auto& e : epochs) {
    if (e.stage_id != last_stage) boundaries.emplace_back(loss.size(), kind_of[e.stage_id]);
    last_stage = e.stage_id;
    loss.push_back(e.train_loss);
    ce.push_back(e.train_cross_entropy);
    cluster.push_back(e.train_cluster);
    sep.push_back(e.train_separation);
    train_acc.push_back(e.train_accuracy);
    eval_acc.push_back(e.eval_accuracy);
  }
  h << "<h2>Training</h2>"
    << chart("loss", {{"total", loss}, {"cross-entropy", ce}}, boundaries)
    << chart("accuracy", {{"train", train_acc}, {epochs.empty() ? "eval" : epochs.back().eval_split, eval_acc}}, boundaries)
    << chart("prototype distances", {{"cluster", cluster}, {"separation", sep}}, boundaries)
    << "<table><tr><th>stage</th><th>status</th><th>epochs</th><th>started</th><th>finished</th></tr>";
  for (const auto& s : stages) {
    int64_t n = 0;
    for (const auto& e : epochs) n += e.stage_id == s.id;
    h << "<tr><td>" << html_escape(kind_of[s.id]) << "</td><td>" << s.status << "</td><td>" << n << "</td><td>" << s.started
      << "</td><td>" << s.finished << "</td></tr>";
  }
  h << "</table>";

  // The latest evaluation.
  const auto evals = store.evaluations();
  h << "<h2>Evaluation</h2>";
  if (evals.empty()) {
    h << "<p>none yet: <code>ppnet evaluate --run " << html_escape(c.run) << " --data DATA</code></p>";
  } else {
    const auto& e = evals.back();
    const json d = json::parse(e.details_json);
    h << "<p>" << html_escape(e.split) << " split, " << e.images << " images, model " << html_escape(e.checkpoint) << " (" << e.created
      << "): <b>accuracy " << e.accuracy << "</b>, top-5 " << e.top5_accuracy << "; " << d["prototypes"]
      << " prototypes, off-class weights near zero " << 100 * d["off_class_sparsity"].get<double>()
      << "%, prototypes strongest for their own class " << 100 * d["own_class_strongest"].get<double>() << "%</p>";
    if (class_names.size() <= 50) {
      const auto confusion = d["confusion"];
      h << "<table><tr><th>true \\ predicted</th>";
      for (const auto& n : class_names) h << "<th>" << html_escape(n) << "</th>";
      h << "<th>accuracy</th></tr>";
      for (size_t i = 0; i < class_names.size(); ++i) {
        int64_t total = 0;
        for (const auto& v : confusion[i]) total += v.get<int64_t>();
        h << "<tr><th>" << html_escape(class_names[i]) << "</th>";
        for (const auto& v : confusion[i]) {
          const double f = total ? static_cast<double>(v.get<int64_t>()) / static_cast<double>(total) : 0.0;
          h << "<td style=\"background:rgba(31,119,180," << f << ")\">" << v << "</td>";
        }
        h << "<td>" << d["per_class_accuracy"][i] << "</td></tr>";
      }
      h << "</table>";
    }
  }

  h << interpretability_section(evals, c.run);

  // The prototypes of the latest projection, grouped by class.
  h << "<h2>Prototypes</h2>";
  const auto projection = store.latest_projection();
  if (!projection) {
    h << "<p>not projected yet: <code>ppnet project --run " << html_escape(c.run) << " --data DATA</code></p>";
  } else {
    const fs::path pics = run.dir() / "prototypes" / std::to_string(*projection);
    std::map<int64_t, std::vector<db::PrototypeRow>> by_class;
    for (const auto& p : store.prototypes(*projection)) by_class[p.class_index].push_back(p);
    h << "<p>projection #" << *projection << ": source patch and its self-activation per prototype</p>";
    for (const auto& [cls, rows] : by_class) {
      h << "<h3>" << html_escape(class_names.at(static_cast<size_t>(cls))) << "</h3>";
      for (const auto& p : rows) {
        h << "<div class=\"p\">" << thumbnail(pics / (std::to_string(p.prototype) + "-patch.png"))
          << thumbnail(pics / (std::to_string(p.prototype) + "-heatmap.png")) << "<br>#" << p.prototype << " "
          << html_escape(p.image_path) << "</div>";
      }
    }
  }
  ReportResult out;
  out.path = c.out.empty() ? (run.dir() / "report.html").string() : c.out;
  h << nearest_patches_section(run, class_names, fs::absolute(out.path).parent_path());
  write_output_file(out.path, h.str());
  out.accuracy = evals.empty() ? -1.0 : evals.back().accuracy;
  out.split = evals.empty() ? "" : evals.back().split;
  return out;
}

}  // namespace ppnet::pipeline
