#include "forkscope/size.h"

#include <gtest/gtest.h>

#include <random>

#include "forkscope/error.h"

namespace forkscope {
namespace {

constexpr uint64_t kKi = 1024;

TEST(ParseSize, AcceptsPlainAndSuffixedForms) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("4096B"), 4096u);
  EXPECT_EQ(parse_size("512K"), 512 * kKi);
  EXPECT_EQ(parse_size("512k"), 512 * kKi);
  EXPECT_EQ(parse_size("2M"), 2 * kKi * kKi);
  EXPECT_EQ(parse_size("2MB"), 2 * kKi * kKi);
  EXPECT_EQ(parse_size("2MiB"), 2 * kKi * kKi);
  EXPECT_EQ(parse_size("2mib"), 2 * kKi * kKi);
  EXPECT_EQ(parse_size("1G"), kKi * kKi * kKi);
  EXPECT_EQ(parse_size("1.5G"), 3 * kKi * kKi * kKi / 2);
  EXPECT_EQ(parse_size("0.5K"), 512u);
  EXPECT_EQ(parse_size("3T"), 3 * kKi * kKi * kKi * kKi);
  EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_size("16777215T"), 16777215 * kKi * kKi * kKi * kKi);
}

TEST(ParseSize, RoundsFractionsDownToWholeBytes) {
  EXPECT_EQ(parse_size("1.3K"), 1331u);  // 1331.2
  EXPECT_EQ(parse_size("0.000001K"), 0u);
}

TEST(ParseSize, RejectsWithUsageError) {
  for (const char* bad : {"",
                          "-1",
                          "-0",
                          "abc",
                          "K",
                          "1.",
                          ".5K",
                          "1.5",
                          "2X",
                          "2 M",
                          " 2M",
                          "2M ",
                          "2MiBs",
                          "2iB",
                          "1..5G",
                          "1e6",
                          "0x10",
                          "+4",
                          "18446744073709551616",
                          "16777216T",
                          "99999999999999999999G",
                          "1.0000001G",
                          "4KB4"}) {
    SCOPED_TRACE(bad);
    try {
      parse_size(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), kExitUsage);
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos);
      EXPECT_NE(msg.find("512K"), std::string::npos) << "says what is accepted: " << msg;
    }
  }
}

TEST(ParseSize, QuotesTheInput) {
  try {
    parse_size("12Q");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"12Q\""), std::string::npos) << e.what();
  }
}

TEST(ParseSizeList, SplitsOnCommas) {
  EXPECT_EQ(parse_size_list("2M"), std::vector<uint64_t>({2 * kKi * kKi}));
  EXPECT_EQ(parse_size_list("0,4K,2M,1.5G"),
            std::vector<uint64_t>({0, 4 * kKi, 2 * kKi * kKi, 3 * kKi * kKi * kKi / 2}));
  EXPECT_EQ(parse_size_list("4K, 2M"), std::vector<uint64_t>({4 * kKi, 2 * kKi * kKi}));
}

TEST(ParseSizeList, RejectsEmptyItemsAndBadSizes) {
  for (const char* bad : {"", ",", "4K,", ",4K", "4K,,2M", "4K, ,2M", "4K,zz"}) {
    SCOPED_TRACE(bad);
    try {
      parse_size_list(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), kExitUsage);
    }
  }
}

TEST(FormatSize, ShortestLabel) {
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(format_size(512), "512");
  EXPECT_EQ(format_size(1000), "1000");
  EXPECT_EQ(format_size(1024), "1K");
  EXPECT_EQ(format_size(1280), "1280");  // shorter than 1.25K
  EXPECT_EQ(format_size(1536), "1.5K");  // a tie goes to the larger unit
  EXPECT_EQ(format_size(4096), "4K");
  EXPECT_EQ(format_size(2 * kKi * kKi), "2M");
  EXPECT_EQ(format_size(3 * kKi * kKi * kKi / 2), "1.5G");
  EXPECT_EQ(format_size(kKi * kKi * kKi * kKi), "1T");
  EXPECT_EQ(format_size(4097), "4097");
}

TEST(FormatSize, RoundTripsThroughParse) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> values = {0, 1, 1023, 1024, 1025, UINT64_MAX, UINT64_MAX - 1023, uint64_t{1} << 63};
  for (int i = 0; i < 2000; ++i) {
    const int shift = static_cast<int>(rng() % 50);
    values.push_back((rng() % 4096) << shift);
    values.push_back(rng() >> (rng() % 64));
  }
  for (uint64_t v : values) {
    SCOPED_TRACE(v);
    const std::string label = format_size(v);
    EXPECT_LE(label.size(), std::to_string(v).size());
    EXPECT_EQ(parse_size(label), v) << label;
  }
}

TEST(FormatNs, ThreeSignificantDigitsInTheRightUnit) {
  EXPECT_EQ(format_ns(0), "0 ns");
  EXPECT_EQ(format_ns(812), "812 ns");
  EXPECT_EQ(format_ns(812.4), "812 ns");
  EXPECT_EQ(format_ns(999.4), "999 ns");
  EXPECT_EQ(format_ns(999.6), "1.00 µs");
  EXPECT_EQ(format_ns(1000), "1.00 µs");
  EXPECT_EQ(format_ns(9996), "10.0 µs");
  EXPECT_EQ(format_ns(61234), "61.2 µs");
  EXPECT_EQ(format_ns(99960), "100 µs");
  EXPECT_EQ(format_ns(512000), "512 µs");
  EXPECT_EQ(format_ns(999999), "1.00 ms");
  EXPECT_EQ(format_ns(2.84e6), "2.84 ms");
  EXPECT_EQ(format_ns(1.2e9), "1.20 s");
  EXPECT_EQ(format_ns(1234.4e9), "1234 s");
}

TEST(FormatBytes, ThreeSignificantDigitsInBinaryUnits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(812), "812 B");
  EXPECT_EQ(format_bytes(812.6), "813 B");
  EXPECT_EQ(format_bytes(999.4), "999 B");
  EXPECT_EQ(format_bytes(1000), "0.98 KiB");  // never four digits
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(10.5 * 1024), "10.5 KiB");
  EXPECT_EQ(format_bytes(1107285), "1.06 MiB");  // a mean of page-table bytes, as trace prints it
  EXPECT_EQ(format_bytes(700.0 * kKi * kKi), "700 MiB");
  EXPECT_EQ(format_bytes(2.0 * kKi * kKi * kKi), "2.00 GiB");
  EXPECT_EQ(format_bytes(3.0 * kKi * kKi * kKi * kKi * kKi), "3072 TiB");
}

}  // namespace
}  // namespace forkscope
