#include "cli/concept_options.h"

#include <iostream>

#include "cli/print_result.h"
#include "pipeline/run/concepts.h"

namespace ppnet::cli {

namespace po = boost::program_options;

int run_concept_command(Options& o, db::ConceptKind kind) {
  pipeline::ConceptConfig c;
  c.kind = kind;
  int64_t prototype = -1, remove = -1;
  std::string box;
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("prototype", po::value(&prototype)->value_name("J"),
       "the patch prototype J of the latest projection was projected onto (its box in its source image)")
      ("image", po::value(&c.image)->value_name("FILE"), "an image file …")
      ("box", po::value(&box)->value_name("x0,y0,x1,y1"),
       "… and the region of it, in its pixels (x1, y1 exclusive); with --prototype, a region of its source image "
       "(the part of its patch that shows the concept)")
      ("class", po::value(&c.class_name)->value_name("CLASS"),
       "the class whose prototypes it concerns: a name, an index, or all (default: the prototype's class; all for --image)")
      ("data", po::value(&c.data)->value_name("DATA"),
       "with --prototype: the data folder holding its source image (default: the one the run was made from)")
      ("remove", po::value(&remove)->value_name("ID"), "remove concept ID instead ('ppnet info --concepts' lists them)");
  o.add_json(c.json);
  if (!o.parse()) return 0;
  o.require({"run"});
  const int ways = (o.given("prototype") ? 1 : 0) + (o.given("image") ? 1 : 0) + (o.given("remove") ? 1 : 0);
  if (ways != 1) throw o.error("give one of --prototype J [--box x0,y0,x1,y1], --image FILE --box x0,y0,x1,y1, or --remove ID");
  if (o.given("prototype")) {
    o.at_least("prototype", prototype, 0);
    c.prototype = prototype;
    if (o.given("box")) c.box = o.choice("box", box, pipeline::parse_box, "x0,y0,x1,y1 (four integers)");
  } else if (o.given("remove")) {
    if (o.given("box")) throw o.error("--remove takes no --box");
    if (o.given("class") || o.given("data")) throw o.error("--remove takes no --class or --data");
    c.remove = remove;
  } else {
    o.require({"image", "box"});
    c.box = o.choice("box", box, pipeline::parse_box, "x0,y0,x1,y1 (four integers)");
  }
  if (o.given("data") && !o.given("prototype")) throw o.error("--data goes with --prototype");
  try {
    print_result(std::cout, pipeline::run_concept(c), c.json);
  } catch (const std::invalid_argument& e) {
    throw o.error(e.what());  // an option's value the run has no use for
  }
  return 0;
}

}  // namespace ppnet::cli
