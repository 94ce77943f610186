#pragma once
// Rendering a page from one of the embedded templates (pipeline/render/pages.h) with kainjow's
// Mustache (Debian's libkainjow-mustache-dev, header-only). Internal to pipeline/render.

#include <kainjow/mustache.hpp>

#include <stdexcept>
#include <string>

namespace ppnet::pipeline {

namespace templates {
/// The embedded templates (generated from pipeline/render/templates/*.html.mustache).
extern const char* const k_explanation;
extern const char* const k_gallery;
extern const char* const k_report;
}  // namespace templates

using PageData = kainjow::mustache::data;

/// A list for a template section.
inline PageData page_list() { return PageData(PageData::type::list); }

/// `data` through `page_template`; throws std::logic_error when the template does not parse (a
/// bug of ours: the templates are built in).
inline std::string render_page(const char* page_template, const PageData& data) {
  kainjow::mustache::mustache m{std::string(page_template)};
  if (!m.is_valid()) throw std::logic_error("page template: " + m.error_message());
  return m.render(data);
}

}  // namespace ppnet::pipeline
