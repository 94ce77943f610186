#include "pipeline/render/pages.h"

#include "pipeline/render/mustache.h"

namespace ppnet::pipeline {

std::string render_explanation_page(const ExplanationPage& page) {
  PageData top = page_list();
  for (const auto& c : page.top_classes) {
    PageData row;
    row.set("name", c.name);
    row.set("logit", c.logit);
    top.push_back(row);
  }
  PageData prototypes = page_list();
  for (const auto& p : page.prototypes) {
    PageData row;
    row.set("rank", std::to_string(p.rank));
    row.set("index", std::to_string(p.index));
    row.set("class_name", p.class_name);
    row.set("box_image", p.box_image);
    row.set("heatmap", p.heatmap);
    row.set("patch", p.patch);
    if (!p.prototype_patch.empty()) row.set("prototype_patch", p.prototype_patch);
    row.set("similarity", p.similarity);
    row.set("weight", p.weight);
    row.set("contribution", p.contribution);
    prototypes.push_back(row);
  }
  PageData d;
  d.set("image", page.image);
  d.set("up", page.up);
  d.set("predicted", page.predicted);
  d.set("logit", page.logit);
  d.set("top_classes", top);
  d.set("prototypes", prototypes);
  return render_page(templates::k_explanation, d);
}

std::string render_gallery_page(const GalleryPage& page) {
  PageData cards = page_list();
  for (const auto& c : page.cards) {
    PageData card;
    card.set("href", c.href);
    card.set("image", c.image);
    card.set("name", c.name);
    card.set("predicted", c.predicted);
    cards.push_back(card);
  }
  PageData d;
  d.set("run", page.run);
  if (page.projection > 0) d.set("projection", std::to_string(page.projection));
  d.set("cards", cards);
  d.set("count", std::to_string(page.cards.size()));
  return render_page(templates::k_gallery, d);
}

}  // namespace ppnet::pipeline
