#pragma once
// Resizing an image to the model's input size, in one of two ways a run records
// (ModelConfig::resize): OpenCV's bilinear interpolation, or the antialiased bilinear filter of
// Pillow (PIL.Image.resize with BILINEAR), which the reference's torchvision transforms apply to
// PIL images: when shrinking, its triangle kernel widens with the scale, so every source pixel
// counts.

#include <string>

namespace cv {
class Mat;
}

namespace ppnet::pipeline {

enum class ResizeMethod { kBilinear, kAntialias };

/// "bilinear" or "antialias".
const char* resize_name(ResizeMethod m);
/// Throws std::invalid_argument "expected bilinear or antialias" for another name.
ResizeMethod parse_resize(const std::string& name);

/// `image` (8-bit, 1 to 4 channels) resized to width × height. kAntialias reproduces Pillow's
/// 8-bit resampling: the same kernel, fixed-point weights of 22 bits, horizontal pass first,
/// each pass rounded to 8 bits.
cv::Mat resize_image(const cv::Mat& image, int width, int height, ResizeMethod method);

}  // namespace ppnet::pipeline
