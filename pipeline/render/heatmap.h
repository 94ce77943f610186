#pragma once
// Pictures of what a prototype sees: similarity heatmaps, high-activation boxes, patches.
// Shared by projection and explanation so both draw the same way (docs/design.md §4).

#include <opencv2/core.hpp>

#include <array>
#include <string>

namespace ppnet::pipeline {

/// The pixels at or above the `percentile` (numpy's, linear between ranks) of `map` (float H×W:
/// a similarity map or an attribution map) upsampled bicubically to width × height: 0/255, 8-bit.
cv::Mat high_activation_pixels(const cv::Mat& map, int width, int height, double percentile = 95.0);

/// Activation precision (IAIA-BL): the share of high_activation_pixels(map, mask's size) inside
/// `mask` (8-bit, non-zero = object). −1 when there is no mask, or when the map is constant: it
/// has no top 5 % (a saliency map is all zero where the image sits at a maximum of the
/// prototype's similarity, such as the prototype's own projected patch).
double activation_precision(const cv::Mat& map, const cv::Mat& mask);

/// The box [x0, y0, x1, y1) (exclusive ends) around high_activation_pixels(map, …); the whole
/// image when there are none (a map of NaN).
std::array<int, 4> high_activation_box(const cv::Mat& map, int width, int height, double percentile = 95.0);

/// The box of side fraction·width × fraction·height (rounded, at least 1 px) centred on the
/// maximum of `similarity` upsampled bicubically to width × height (the first maximum in row
/// order), clipped to the image: EvalProtoPNet's part box (72 px of 224 is fraction 0.32).
std::array<int, 4> peak_box(const cv::Mat& similarity, int width, int height, double fraction);

/// `image` (8-bit BGR) blended with the JET-coloured, min-max scaled `similarity` map upsampled
/// to its size: 0.5 · image + 0.3 · heatmap.
cv::Mat overlay_heatmap(const cv::Mat& image, const cv::Mat& similarity);

/// A copy of `image` with `box` drawn in yellow (BGR 0,255,255), 2 px.
cv::Mat draw_box(const cv::Mat& image, const std::array<int, 4>& box);

/// PNG bytes of an 8-bit image.
std::string encode_png(const cv::Mat& image);

/// `box` scaled from a width_from × height_from image to a width_to × height_to one.
std::array<int, 4> scale_box(const std::array<int, 4>& box, int width_from, int height_from, int width_to,
                             int height_to);

}  // namespace ppnet::pipeline
