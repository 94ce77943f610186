// The explanation pages from their templates: every text escaped, every optional part present
// only when there is something to show.
#include <gtest/gtest.h>

#include <string>

#include "pipeline/render/pages.h"

namespace ppnet::pipeline {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(Pages, ExplanationPageEscapesTextAndShowsWhatItHas) {
  ExplanationPage page;
  page.image = "birds/<a & b>.png";
  page.up = "../../";
  page.predicted = "Groove \"billed\" Ani";
  page.logit = "12.500";
  page.top_classes = {{"Groove \"billed\" Ani", "12.500"}, {"Tern & Gull", "3.000"}};
  page.prototypes = {{1, 31, "Groove \"billed\" Ani", "01-box.png", "01-heatmap.png", "01-patch.png", "01-prototype.png",
                      "5.100", "1.000", "5.100"},
                     {2, 7, "Tern & Gull", "02-box.png", "02-heatmap.png", "02-patch.png", "", "0.500", "-0.500", "-0.250"}};
  const std::string html = render_explanation_page(page);
  EXPECT_TRUE(contains(html, "<title>birds/&lt;a &amp; b&gt;.png</title>")) << html;
  EXPECT_TRUE(contains(html, "<a href=\"../../index.html\">all images</a>"));
  EXPECT_TRUE(contains(html, "predicted <b>Groove &quot;billed&quot; Ani</b> (logit 12.500)"));
  EXPECT_TRUE(contains(html, "<li>Tern &amp; Gull: 3.000</li>"));
  EXPECT_TRUE(contains(html, "<img src=\"01-prototype.png\">"));
  EXPECT_FALSE(contains(html, "02-prototype.png")) << "a prototype without a source shows no picture";
  EXPECT_TRUE(contains(html, "prototype 7 of Tern &amp; Gull<br>similarity 0.500 × weight -0.500 = -0.250"));
  EXPECT_FALSE(contains(html, "<a & b>"));
}

TEST(Pages, GalleryListsEveryCardAndCountsThem) {
  GalleryPage g{"runs/<x>", 4, {{"a%20b/index.html", "a%20b/input.png", "a b", "cat"}, {"c/index.html", "c/input.png", "c", "dog"}}};
  const std::string html = render_gallery_page(g);
  EXPECT_TRUE(contains(html, "run runs/&lt;x&gt;, projection #4")) << html;
  EXPECT_TRUE(contains(html, "<a href=\"a%20b/index.html\"><img src=\"a%20b/input.png\" alt=\"\"><br>a b</a><br>cat"));
  EXPECT_TRUE(contains(html, "<p>2 images</p>"));
}

}  // namespace
}  // namespace ppnet::pipeline
