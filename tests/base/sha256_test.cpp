// SHA-256 against FIPS 180-4's published examples and Python's hashlib on random bytes.
#include "base/sha256.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "test_paths.h"
#include "tests/common/test_util.h"

namespace ppnet {
namespace {

TEST(Sha256, PublishedExamples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecewiseEqualsWholeAndPythonsHashlib) {
  std::mt19937 rng(7);
  test::TempDir dir;
  std::string expected_lines, actual_lines;
  for (size_t n : {size_t{1}, size_t{55}, size_t{56}, size_t{63}, size_t{64}, size_t{65}, size_t{119}, size_t{1000}, size_t{100003}}) {
    std::string bytes(n, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
    Sha256 pieces;  // updates of random sizes, crossing block boundaries anywhere
    for (size_t at = 0; at < n;) {
      const size_t take = std::min<size_t>(n - at, rng() % 130);
      pieces.update(bytes.data() + at, take);
      at += take;
    }
    const std::string whole = sha256_hex(bytes);
    EXPECT_EQ(pieces.hex(), whole) << n << " bytes";
    test::write_file(dir.file(std::to_string(n)), bytes);
    EXPECT_EQ(sha256_of_file(dir.file(std::to_string(n))), whole) << n << " bytes, from the file";
    actual_lines += whole + "\n";
    expected_lines += std::to_string(n) + "\n";
  }
  // The oracle: hashlib over the same files, in the same order.
  const std::string script = dir.file("hash.py");
  test::write_file(script, "import hashlib, sys\nfor n in sys.stdin.read().split():\n"
                           "    print(hashlib.sha256(open(sys.argv[1] + '/' + n, 'rb').read()).hexdigest())\n");
  const std::string command = "echo '" + expected_lines + "' | " PPNET_ORACLE_PYTHON " " + script + " " + dir.path().string();
  FILE* p = popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, p)) out += buf;
  ASSERT_EQ(pclose(p), 0);
  EXPECT_EQ(out, actual_lines);
}

TEST(Sha256, AFileThatCannotBeOpenedIsNamed) {
  test::TempDir dir;
  try {
    sha256_of_file(dir.file("missing"));
    ADD_FAILURE() << "a missing file was hashed";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), dir.file("missing") + ": cannot open file");
  }
}

}  // namespace
}  // namespace ppnet
