#include <gtest/gtest.h>

#include "util/counters.h"
#include "util/size_parse.h"
#include "util/status.h"
#include "util/utf8.h"

namespace strata {
namespace {

TEST(ParseSize, AcceptsWhatUsersWrite) {
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_EQ(*ParseSize("64K"), 64u << 10);
  EXPECT_EQ(*ParseSize("64k"), 64u << 10);
  EXPECT_EQ(*ParseSize("48G"), 48ull << 30);
  EXPECT_EQ(*ParseSize("48GiB"), 48ull << 30);
  EXPECT_EQ(*ParseSize("48GB"), 48ull << 30);
  EXPECT_EQ(*ParseSize("1.5G"), 3ull << 29);
  EXPECT_EQ(*ParseSize("2T"), 2ull << 40);
  EXPECT_EQ(*ParseSize(" 10M "), 10u << 20);
  EXPECT_EQ(*ParseSize("100B"), 100u);
}

TEST(ParseSize, RejectsWithTheText) {
  for (const char* bad :
       {"", "G", "12X", "-5G", "1.2.3G", "99999999999999999999T", "17179869184T", "5 G B"}) {
    auto r = ParseSize(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos);
  }
}

TEST(FormatBytes, ThreeSignificantDigits) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(48ull << 30), "48.0 GiB");
  EXPECT_EQ(FormatBytes(300ull << 30), "300 GiB");
}

TEST(Utf8, ValidatesStrictly) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("<｜begin▁of▁sentence｜>"));
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));   // U+1F600
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
  EXPECT_EQ(PrintableForError("a\nb\xFF"), "a\\x0Ab\\xFF");
}

TEST(Utf8, SafeForTerminalDisarmsControls) {
  EXPECT_EQ(SafeForTerminal("plain\ttext\r\nnext"), "plain\ttext\r\nnext");
  EXPECT_EQ(SafeForTerminal("\x1b[2J\x07\x0e"), "^[[2J^G^N");
  EXPECT_EQ(SafeForTerminal(std::string("a\0b", 3) + "\x7f"), "a^@b^?");
  // C1 controls (here CSI, U+009B) and stray bytes become U+FFFD; other text is kept.
  EXPECT_EQ(SafeForTerminal("\xc2\x9b" "2J \xff é"), "\xef\xbf\xbd" "2J \xef\xbf\xbd é");
  EXPECT_EQ(SafeForTerminal("<｜User｜> \xF0\x9F\x98\x80"), "<｜User｜> \xF0\x9F\x98\x80");
}

TEST(Status, OneLineWithCode) {
  Status s = Status::Corruption("m.gguf: bad").WithContext("loading");
  EXPECT_EQ(s.ToString(), "corrupt: loading: m.gguf: bad");
  Result<int> r = Status::NotFound("x");
  EXPECT_FALSE(r.ok());
  Result<int> v = 3;
  EXPECT_EQ(*v, 3);
}

struct ThreeCounters {
  uint64_t a = 0, b = 0, c = 0;
};

TEST(CounterDelta, SubtractsEveryMemberWithoutNamingThem) {
  const ThreeCounters before{10, 20, 30}, now{15, 20, 1ull << 40};
  const ThreeCounters d = CounterDelta(now, before);
  EXPECT_EQ(d.a, 5u);
  EXPECT_EQ(d.b, 0u);
  EXPECT_EQ(d.c, (1ull << 40) - 30);
}

}  // namespace
}  // namespace strata
