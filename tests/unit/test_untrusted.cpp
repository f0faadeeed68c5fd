#include "forkscope/untrusted.h"

#include <gtest/gtest.h>

#include <random>

namespace forkscope {
namespace {

TEST(SafeText, KeepsPrintableAsciiAndUtf8) {
  EXPECT_EQ(safe_text("bash"), "bash");
  EXPECT_EQ(safe_text("/usr/lib/x86_64-linux-gnu/libc.so.6"), "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_EQ(safe_text("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x90\xa7"), "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x90\xa7");
  EXPECT_EQ(safe_text(""), "");
}

TEST(SafeText, EscapesWhatATerminalWouldActOn) {
  EXPECT_EQ(safe_text("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
  EXPECT_EQ(safe_text("a\nb\rc\td"), "a\\x0ab\\x0dc\\x09d");
  EXPECT_EQ(safe_text(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(safe_text("\x7f"), "\\x7f");
  EXPECT_EQ(safe_text("\xc2\x9b"
                      "2J"),
            "\\u009b2J");  // C1 CSI
  EXPECT_EQ(safe_text("a\xe2\x80\xae"
                      "b"),
            "a\\u202eb");                             // right-to-left override
  EXPECT_EQ(safe_text("\xe2\x81\xa6x"), "\\u2066x");  // left-to-right isolate
}

TEST(SafeText, EscapesInvalidUtf8ByteByByte) {
  EXPECT_EQ(safe_text("\xff"), "\\xff");
  EXPECT_EQ(safe_text("\xc3"), "\\xc3");                             // truncated sequence
  EXPECT_EQ(safe_text("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(safe_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(safe_text("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
}

TEST(SafeText, BackslashCannotForgeAnEscape) {
  EXPECT_EQ(safe_text("\\x1b"), "\\\\x1b");
  EXPECT_NE(safe_text("\\x1b"), safe_text("\x1b"));
}

// Property: whatever the bytes, the result is safe, and safe input without a
// backslash comes back unchanged.
TEST(SafeText, AnyBytesBecomeSafeText) {
  std::mt19937_64 rng(20261130);
  std::uniform_int_distribution<int> len(0, 40), byte(0, 255), pick(0, 9);
  const std::string pieces[] = {"\x1b[2J", "\xc2\x9b", "\xe2\x80\xae", "\\", "\xf0\x9f\x90\xa7", "\xc3\xa9"};
  for (int round = 0; round < 20000; round++) {
    std::string raw;
    for (int i = len(rng); i > 0; i--) {
      if (pick(rng) == 0) {
        raw += pieces[static_cast<size_t>(byte(rng)) % std::size(pieces)];
      } else {
        raw += static_cast<char>(byte(rng));
      }
    }
    const std::string safe = safe_text(raw);
    ASSERT_TRUE(is_safe_text(safe)) << "input of " << raw.size() << " bytes, round " << round;
    if (is_safe_text(raw) && raw.find('\\') == std::string::npos) {
      ASSERT_EQ(safe, raw);
    }
  }
}

}  // namespace
}  // namespace forkscope
