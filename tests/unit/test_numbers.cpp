// The one parser of counts on the command line.
#include <gtest/gtest.h>

#include "forkscope/size.h"

namespace forkscope {
namespace {

TEST(WholeNumber, AcceptsDecimalDigitsOnly) {
  EXPECT_EQ(parse_whole_number("0"), 0u);
  EXPECT_EQ(parse_whole_number("16"), 16u);
  EXPECT_EQ(parse_whole_number("007"), 7u);
  EXPECT_EQ(parse_whole_number("18446744073709551615"), UINT64_MAX);
}

TEST(WholeNumber, RefusesWhatStrtoulWouldTake) {
  for (const char* text : {"", " 5", "5 ", "+5", "-1", "0x10", "1e3", "1.0", "5\n", "１"})
    EXPECT_EQ(parse_whole_number(text), std::nullopt) << '"' << text << '"';
}

TEST(WholeNumber, RefusesOverflow) {
  EXPECT_EQ(parse_whole_number("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_whole_number("99999999999999999999"), std::nullopt);
}

}  // namespace
}  // namespace forkscope
