#include "pipeline/formats/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "pipeline/formats/weights_file.h"
#include "tests/common/test_util.h"

namespace ppnet::pipeline {
namespace {

using test::TempDir;

std::string with_header(const std::string& header, const std::string& data, uint64_t length) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string with_header(const std::string& header, const std::string& data) {
  return with_header(header, data, header.size());
}

// The message read_safetensors throws for `bytes`, or "" if it reads them.
std::string error_for(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("w.safetensors");
  test::write_file(path, bytes);
  try {
    read_safetensors(path);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "message does not start with the path: " << msg;
    return msg;
  }
  return "";
}

#define EXPECT_ERROR_CONTAINS(bytes, text)                                 \
  do {                                                                     \
    const std::string msg_ = error_for(dir, bytes);                        \
    EXPECT_NE(msg_.find(text), std::string::npos) << "message: " << msg_; \
  } while (0)

TEST(Safetensors, ReadsWhatWasWritten) {
  TempDir dir;
  const auto a = torch::randn({2, 3});
  const auto b = torch::arange(5, torch::kInt64);
  const auto c = torch::randn({4}, torch::kFloat64);
  test::write_safetensors(dir.file("t.safetensors"), {{"a", a}, {"b", b}, {"c.d", c}});
  const auto got = read_safetensors(dir.file("t.safetensors"));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(torch::equal(got.at("a"), a));
  EXPECT_TRUE(torch::equal(got.at("b"), b));
  EXPECT_TRUE(torch::equal(got.at("c.d"), c));
  WeightsFormat f;
  read_weights_file(dir.file("t.safetensors"), &f);
  EXPECT_EQ(f, WeightsFormat::kSafetensors);
}

TEST(Safetensors, ReadsHalfPrecisionAndSkipsMetadata) {
  TempDir dir;
  const std::string half_one_two("\x00\x3c\x00\x40", 4);  // 1.0, 2.0 as IEEE half
  const std::string path = dir.file("h.safetensors");
  test::write_file(path, with_header(R"({"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                                     half_one_two));
  const auto got = read_safetensors(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(torch::equal(got.at("h").to(torch::kFloat32), torch::tensor({1.f, 2.f})));
}

TEST(Safetensors, MalformedFilesEachGiveTheirError) {
  TempDir dir;
  const std::string good = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  const std::string data(16, '\0');
  EXPECT_EQ(error_for(dir, with_header(good, data)), "");

  EXPECT_ERROR_CONTAINS(std::string("abc"), "too short");
  EXPECT_ERROR_CONTAINS(with_header(good, data, good.size() + 100), "does not fit");
  EXPECT_ERROR_CONTAINS(with_header(good, data, ~0ull), "does not fit");
  EXPECT_ERROR_CONTAINS(with_header("{\"w\": [1, 2", "xxxxxxxxxx"), "not a JSON object");
  EXPECT_ERROR_CONTAINS(with_header("[1, 2]", ""), "not a JSON object");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F8","shape":[2,2],"data_offsets":[0,16]}})", data),
                        "unsupported dtype 'F8'");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"shape":[2,2],"data_offsets":[0,16]}})", data), "'dtype'");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", data),
                        "non-negative");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", data),
                        "needs 24 bytes but data_offsets span 16");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})", data),
                        "fall outside");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})", data),
                        "fall outside");
  EXPECT_ERROR_CONTAINS(with_header(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}})", data),
                        "two non-negative integers");
  EXPECT_ERROR_CONTAINS(
      with_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}})", data),
      "too large");
  EXPECT_ERROR_CONTAINS(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                    data),
                        "overlap");
}

TEST(Safetensors, TruncatedFileIsRefused) {
  TempDir dir;
  test::write_safetensors(dir.file("t.safetensors"), {{"a", torch::randn({64})}});
  const std::string bytes = test::read_file(dir.file("t.safetensors"));
  EXPECT_ERROR_CONTAINS(bytes.substr(0, bytes.size() - 10), "fall outside");
  EXPECT_ERROR_CONTAINS(bytes.substr(0, 20), "does not fit");
}

TEST(Safetensors, GarbageIsNotMistakenForWeights) {
  TempDir dir;
  const std::string path = dir.file("notes.txt");
  test::write_file(path, "hello, these are not weights at all\n");
  try {
    read_weights_file(path);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

}  // namespace
}  // namespace ppnet::pipeline
