#pragma once
// The HTML pages of explanations, from templates (pipeline/render/templates/, Mustache, embedded
// in the library): the computing code fills these plain structs, the templates say how they look
// and escape every text.

#include <cstdint>
#include <string>
#include <vector>

namespace ppnet::pipeline {

/// One explained image's page (OUT/<image>/index.html). Numbers come as the text to show.
struct ExplanationPage {
  std::string image;  // its path under --dir
  std::string up;     // "../" once per folder level, to the gallery
  std::string predicted, logit;
  struct TopClass {
    std::string name, logit;
  };
  std::vector<TopClass> top_classes;
  struct Prototype {
    int64_t rank = 0, index = 0;
    std::string class_name;
    std::string box_image, heatmap, patch, prototype_patch;  // file names beside the page; prototype_patch may be empty
    std::string similarity, weight, contribution;
  };
  std::vector<Prototype> prototypes;
};

/// The gallery of a batch of explanations (OUT/index.html).
struct GalleryPage {
  std::string run;
  int64_t projection = 0;  // 0: an imported model's prototypes, not projected by ppnet
  struct Card {
    std::string href, image;  // URLs relative to the gallery
    std::string name, predicted;
  };
  std::vector<Card> cards;
};

std::string render_explanation_page(const ExplanationPage& page);
std::string render_gallery_page(const GalleryPage& page);

}  // namespace ppnet::pipeline
