#include <chrono>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "base/atomic_file.h"
#include "pipeline/render/report.h"

#include "base/paths.h"
#include "pipeline/run/concepts.h"
#include "pipeline/render/html.h"
#include "pipeline/render/mustache.h"
#include "pipeline/render/pages.h"
#include "pipeline/run/run_folder.h"

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

// An image as a small inline thumbnail (the report is one self-contained file), scaled to `side`
// pixels on its longer edge: small images (28 px) grow, with visible pixels.
std::string thumbnail_of(cv::Mat img, int side = 80) {
  if (img.empty()) return "";
  const double s = static_cast<double>(side) / std::max(img.cols, img.rows);
  cv::resize(img, img, cv::Size(), s, s, s < 1.0 ? cv::INTER_AREA : cv::INTER_NEAREST);
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  return "<img src=\"data:image/png;base64," + base64(buf) + "\" alt=\"\">";
}

std::string thumbnail(const fs::path& file, int side = 80) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return "";  // pictures not written (project --no-images)
  return thumbnail_of(cv::imread(file.string(), cv::IMREAD_COLOR), side);
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
  // viewBox: the page's CSS may shrink the chart to a narrow screen.
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kW << "\" height=\"" << kH << "\" viewBox=\"0 0 " << kW << ' '
    << kH << "\" font-size=\"11\">"
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
      << "\" stroke=\"#bbb\" stroke-dasharray=\"3,3\"/>";
    // A label that would run past the right edge (the last stage's) ends at its rule instead.
    const bool past_edge = X(at) + 2 + 6.5 * static_cast<double>(name.size()) > kW;
    s << "<text x=\"" << (past_edge ? X(at) - 2 : X(at) + 2) << "\" y=\"" << kT + 12 + 12 * static_cast<double>(b % 2)
      << "\" fill=\"#777\"" << (past_edge ? " text-anchor=\"end\"" : "") << ">" << html_escape(name) << "</text>";
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

std::string fixed3(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(3) << v;
  return s.str();
}

// Numbers as the report has always shown them (the stream's default format).
template <class T>
std::string text(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// The run's curves (one point per epoch, stage boundaries as rules) and its stages.
PageData training_section(const std::vector<db::StageRow>& stages, const std::vector<db::EpochRow>& epochs) {
  std::map<int64_t, std::string> kind_of;
  for (const auto& s : stages) kind_of[s.id] = db::to_string(s.kind) + (" #" + std::to_string(s.id));
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
  PageData charts = page_list();
  for (const std::string& svg :
       {chart("loss", {{"total", loss}, {"cross-entropy", ce}}, boundaries),
        chart("accuracy", {{"train", train_acc}, {epochs.empty() ? "eval" : epochs.back().eval_split, eval_acc}}, boundaries),
        chart("prototype distances", {{"cluster", cluster}, {"separation", sep}}, boundaries)}) {
    PageData c;
    c.set("svg", svg);
    charts.push_back(c);
  }
  PageData rows = page_list();
  for (const auto& s : stages) {
    int64_t n = 0;
    for (const auto& e : epochs) n += e.stage_id == s.id;
    PageData row;
    row.set("name", kind_of[s.id]);
    row.set("status", db::to_string(s.status));
    row.set("epochs", std::to_string(n));
    row.set("started", s.started);
    row.set("finished", s.finished);
    rows.push_back(row);
  }
  PageData section;
  section.set("charts", charts);
  section.set("stages", rows);
  return section;
}

// The latest evaluation, with its confusion matrix up to 50 classes. Its details are read
// through a mutable json (a missing key reads as null) and throw json::exception when they are
// not what ppnet writes (run.sqlite edited): run_report() then leaves the section out.
PageData evaluation_section(const db::EvaluationRow& e, const std::vector<std::string>& class_names) {
  json d = json::parse(e.details_json);
  PageData ev;
  ev.set("split", e.split);
  ev.set("images", std::to_string(e.images));
  ev.set("checkpoint", e.checkpoint);
  ev.set("created", e.created);
  ev.set("accuracy", text(e.accuracy));
  ev.set("top5", text(e.top5_accuracy));
  ev.set("prototypes", d["prototypes"].dump());
  ev.set("sparsity", text(100 * d["off_class_sparsity"].get<double>()));
  ev.set("own_class", text(100 * d["own_class_strongest"].get<double>()));
  if (class_names.size() > 50) return ev;
  PageData columns = page_list();
  for (const auto& n : class_names) columns.push_back(PageData(n));
  PageData rows = page_list();
  auto confusion = d["confusion"];
  for (size_t i = 0; i < class_names.size(); ++i) {
    int64_t total = 0;
    for (const auto& v : confusion[i]) total += v.get<int64_t>();
    PageData cells = page_list();
    for (const auto& v : confusion[i]) {
      PageData cell;
      cell.set("count", v.dump());
      cell.set("shade", text(total ? static_cast<double>(v.get<int64_t>()) / static_cast<double>(total) : 0.0));
      cells.push_back(cell);
    }
    PageData row;
    row.set("name", class_names[i]);
    row.set("cells", cells);
    row.set("accuracy", d["per_class_accuracy"][i].dump());
    rows.push_back(row);
  }
  PageData confusion_table;
  confusion_table.set("columns", columns);
  confusion_table.set("rows", rows);
  ev.set("confusion", confusion_table);
  return ev;
}

// The interpretability metrics of every evaluation that measured them, latest first; an empty
// list when none did.
PageData metrics_section(const std::vector<db::EvaluationRow>& evals) {
  PageData rows = page_list();
  for (auto it = evals.rbegin(); it != evals.rend(); ++it) {
    json d = json::parse(it->details_json, nullptr, false);  // discarded (not an object) when unreadable
    if (!d.is_object() || !d.contains("metrics") || !d["metrics"].is_object()) continue;
    json& m = d["metrics"];
    PageData values = page_list();
    // background: the share of prototypes whose own patch lies off the object (lower is better).
    const auto value_of = [&](const std::string& n) -> double {
      if (n == "background") return m.contains("precision") ? m["precision"].value("background_share", -1.0) : -1.0;
      return m.contains(n) ? m[n].value("value", -1.0) : -1.0;
    };
    for (const char* n : {"consistency", "stability", "pointing", "purity", "precision", "background"}) {
      PageData v;
      if (value_of(n) >= 0) {
        const double x = value_of(n);
        PageData measured;
        measured.set("percent", text(100 * x));
        measured.set("text", fixed3(x));
        v.set("measured", measured);
      }
      values.push_back(v);
    }
    PageData row;
    row.set("created", it->created);
    row.set("split", it->split);
    row.set("checkpoint", it->checkpoint);
    row.set("attribution", m.value("attribution", std::string("upsample")));
    row.set("values", values);
    const bool sparsity = m.contains("sparsity");
    row.set("zero_weights", sparsity ? text(m["sparsity"]["zero_weights"].get<double>()) : "–");
    row.set("distinct_patches", sparsity ? m["sparsity"]["distinct_patches"].dump() + " of " + m["sparsity"]["prototypes"].dump()
                                         : "–");
    rows.push_back(row);
  }
  return rows;
}

// The prototypes of the latest projection, grouped by class, each as its patch and heatmap
// (inline thumbnails).
PageData prototypes_section(RunFolder& run, int64_t projection, const std::vector<std::string>& class_names) {
  const fs::path pics = run.dir() / "prototypes" / std::to_string(projection);
  std::map<int64_t, std::vector<db::PrototypeRow>> by_class;
  for (const auto& p : run.store().prototypes(projection)) by_class[p.class_index].push_back(p);
  PageData classes = page_list();
  for (const auto& [cls, rows] : by_class) {
    PageData prototypes = page_list();
    for (const auto& p : rows) {
      PageData proto;
      proto.set("patch", thumbnail(pics / (std::to_string(p.prototype) + "-patch.png")));
      proto.set("heatmap", thumbnail(pics / (std::to_string(p.prototype) + "-heatmap.png")));
      proto.set("index", std::to_string(p.prototype));
      proto.set("image", p.image_path);
      prototypes.push_back(proto);
    }
    PageData c;
    c.set("name", class_name_of(class_names, cls));
    c.set("prototypes", prototypes);
    classes.push_back(c);
  }
  PageData section;
  section.set("id", std::to_string(projection));
  section.set("classes", classes);
  return section;
}

// The latest analysis: each prototype's projected patch next to its nearest patches. Those are
// linked rather than embedded (k per prototype would make the page huge), relative to the page.
PageData nearest_patches_section(RunFolder& run, const db::AnalysisRow& analysis,
                                 const std::vector<std::string>& class_names, const fs::path& page_dir) {
  const auto projection = analysis.projection;
  std::map<int64_t, std::vector<db::NearestPatchRow>> by_prototype;
  for (auto& r : run.store().nearest_patches(analysis.id)) by_prototype[r.prototype].push_back(std::move(r));
  std::map<int64_t, int64_t> class_of;
  if (projection) {
    for (const auto& p : run.store().prototypes(*projection)) class_of[p.prototype] = p.class_index;
  }
  PageData prototypes = page_list();
  for (const auto& [j, rows] : by_prototype) {
    PageData proto;
    proto.set("index", std::to_string(j));
    const auto cls = class_of.find(j);
    if (cls != class_of.end()) proto.set("class_name", class_name_of(class_names, cls->second));
    if (projection) {
      proto.set("projected",
                thumbnail(run.dir() / "prototypes" / std::to_string(*projection) / (std::to_string(j) + "-patch.png"), 64));
    }
    PageData nearest = page_list();
    double precision_sum = 0;
    int precision_n = 0;
    for (const auto& r : rows) {
      PageData n;
      if (!analysis.pictures.empty()) {
        const fs::path png = run.dir() / analysis.pictures / (std::to_string(j) + "-" + std::to_string(r.rank) + "-patch.png");
        n.set("src", url_path(fs::relative(png, page_dir).generic_string()));
      }
      n.set("other", cls != class_of.end() && r.class_index != cls->second);
      std::ostringstream similarity;
      similarity << std::setprecision(3) << r.similarity;
      n.set("class_name", class_name_of(class_names, r.class_index));
      n.set("similarity", similarity.str());
      if (r.precision) {
        std::ostringstream precision;
        precision << std::setprecision(2) << *r.precision;
        n.set("patch_precision", precision.str());
        precision_sum += *r.precision;
        ++precision_n;
      }
      nearest.push_back(n);
    }
    if (precision_n > 0) proto.set("precision", fixed3(precision_sum / precision_n));
    proto.set("nearest", nearest);
    prototypes.push_back(proto);
  }
  PageData section;
  section.set("id", std::to_string(analysis.id));
  section.set("attribution", analysis.attribution);
  section.set("created", analysis.created);
  section.set("k", std::to_string(analysis.k));
  section.set("split", analysis.split);
  section.set("checkpoint", analysis.checkpoint);
  section.set("prototypes", prototypes);
  return section;
}

// The concepts marked with forbid / remember: the region and the image it was cut from, boxed.
PageData concepts_section(db::RunStore& store, const std::vector<std::string>& class_names) {
  PageData rows = page_list();
  for (const auto& k : store.concepts()) {
    const cv::Mat image = cv::imdecode(std::vector<uchar>(k.pixels.begin(), k.pixels.end()), cv::IMREAD_COLOR);
    PageData row;
    row.set("id", std::to_string(k.id));
    row.set("kind", db::to_string(k.kind));
    const std::string class_name = concept_class_name(k, class_names);
    row.set("class_name", class_name == "all" ? "all classes" : class_name);
    row.set("origin", k.origin);
    row.set("created", k.created);
    // The box as recorded, pictured only when it lies inside the image (a database edited by
    // hand can hold any integers: compared before any arithmetic on them).
    const bool inside = !image.empty() && 0 <= k.box[0] && k.box[0] < k.box[2] && k.box[2] <= image.cols && 0 <= k.box[1] &&
                        k.box[1] < k.box[3] && k.box[3] <= image.rows;
    if (inside) {
      const cv::Rect box(static_cast<int>(k.box[0]), static_cast<int>(k.box[1]), static_cast<int>(k.box[2] - k.box[0]),
                         static_cast<int>(k.box[3] - k.box[1]));
      row.set("patch", thumbnail_of(image(box).clone(), 64));
      cv::Mat boxed = image.clone();
      cv::rectangle(boxed, box, cv::Scalar(0, 0, 255), std::max(1, std::max(image.cols, image.rows) / 100));
      row.set("image", thumbnail_of(boxed, 64));
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

ReportResult run_report(const ReportConfig& c) {
  RunFolder run = RunFolder::open(c.run);
  if (!c.out.empty()) run.check_output(c.out);
  db::RunStore& store = run.store();
  const auto r = *store.run();
  const std::vector<std::string> class_names = run.class_names();
  ReportResult out;
  out.path = c.out.empty() ? (run.dir() / "report.html").string() : c.out;

  PageData page;
  page.set("run", c.run);
  page.set("model", r.model_json);
  page.set("data", r.data_path);
  page.set("created", r.created);
  page.set("version", r.ppnet_version);
  page.set("training", training_section(store.stages(), store.epochs()));
  const auto evals = store.evaluations();
  try {
    if (!evals.empty()) page.set("evaluation", evaluation_section(evals.back(), class_names));
  } catch (const json::exception&) {
    // An evaluation record that is not what ppnet writes (run.sqlite edited): left out.
  }
  PageData metrics = page_list();
  try {
    metrics = metrics_section(evals);
  } catch (const json::exception&) {
    // As above.
  }
  if (!metrics.is_empty_list()) {
    PageData section;
    section.set("rows", metrics);
    page.set("metrics", section);
  }
  if (const auto projection = store.latest_projection()) {
    page.set("projection", prototypes_section(run, *projection, class_names));
  }
  const PageData concepts = concepts_section(store, class_names);
  if (!concepts.is_empty_list()) {
    PageData section;
    section.set("rows", concepts);
    page.set("concepts", section);
  }
  if (const auto analysis = store.latest_analysis()) {
    page.set("analysis", nearest_patches_section(run, *analysis, class_names, fs::absolute(out.path).parent_path()));
  }
  write_output_file(out.path, render_page(templates::k_report, page));
  out.accuracy = evals.empty() ? -1.0 : evals.back().accuracy;
  out.split = evals.empty() ? "" : evals.back().split;
  return out;
}

}  // namespace ppnet::pipeline
