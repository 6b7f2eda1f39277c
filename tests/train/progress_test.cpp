#include <hybrid/train/progress.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <sstream>
#include <string>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using namespace hybrid::train;

namespace {
std::size_t count_lines(const std::string& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }
bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("format_duration: m:ss, h:mm:ss, unknown") {
  CHECK(format_duration(0) == "0:00");
  CHECK(format_duration(5.4) == "0:05");
  CHECK(format_duration(59.6) == "1:00");  // rounded, not truncated
  CHECK(format_duration(125) == "2:05");
  CHECK(format_duration(3600) == "1:00:00");
  CHECK(format_duration(3 * 3600 + 7 * 60 + 9) == "3:07:09");
  CHECK(format_duration(-1) == "--:--");
  CHECK(format_duration(std::numeric_limits<double>::infinity()) == "--:--");
  CHECK(format_duration(std::numeric_limits<double>::quiet_NaN()) == "--:--");
}

TEST_CASE("format_rate: three significant digits, k and M, unknown") {
  CHECK(format_rate(1.234) == "1.23 it/s");
  CHECK(format_rate(45.67, "step") == "45.7 step/s");
  CHECK(format_rate(789.4) == "789 it/s");
  CHECK(format_rate(12345, "tok") == "12.3k tok/s");
  CHECK(format_rate(4.56e6) == "4.56M it/s");
  CHECK(format_rate(0) == "-- it/s");
  CHECK(format_rate(std::numeric_limits<double>::infinity()) == "-- it/s");
}

TEST_CASE("format_progress_line: bar, counts, percentage, rate, elapsed and ETA") {
  const std::string s = format_progress_line("train", 45, 100, 5.0, "loss 0.123", 20);
  CHECK(s == "train [#########...........]  45/100   45%  9.00 it/s  0:05 < ETA 0:06  loss 0.123");
  // Complete: full bar, ETA 0.
  CHECK(contains(format_progress_line("x", 10, 10, 2.0, {}, 4), "x [####]  10/10  100%  5.00 it/s  0:02 < ETA 0:00"));
  // Nothing done yet, or no time elapsed: no rate, no ETA, no division by zero.
  CHECK(format_progress_line("x", 0, 10, 0.0, {}, 4) == "x [....]  0/10    0%  -- it/s  0:00 < ETA --:--");
  CHECK(format_progress_line("x", 0, 10, 3.0, {}, 4) == "x [....]  0/10    0%  -- it/s  0:03 < ETA --:--");
  // Unknown total: a count only.
  CHECK(format_progress_line("x", 7, 0, 1.0, {}, 4) == "x [....]  7  7.00 it/s  0:01 < ETA --:--");
  // More done than announced stays at 100%.
  CHECK(contains(format_progress_line("x", 12, 10, 1.0, {}, 4), "[####]  12/10  100%"));
  // No bar.
  CHECK(format_progress_line("x", 1, 2, 1.0, {}, 0, "step") == "x  1/2   50%  1.00 step/s  0:01 < ETA 0:01");
}

TEST_CASE("progress, plain mode: one line per 10%, no carriage returns, a final line") {
  std::ostringstream os;
  {
    progress p("epoch 1", 200, {.out = &os, .mode = progress_mode::plain, .plain_every_percent = 10});
    CHECK_FALSE(p.is_tty());
    CHECK(os.str().empty());  // nothing until the first 10%
    for (index_t i = 1; i <= 200; ++i) p.update(i, "loss 1.0");
    CHECK(p.done() == 200);
    p.finish();
  }
  const std::string s = os.str();
  CHECK(count_lines(s) == 10);  // 10%, 20%, ..., 100%; finish() does not repeat the 100% line
  CHECK(s.find('\r') == std::string::npos);
  CHECK(s.find("\x1b") == std::string::npos);
  CHECK(contains(s, "epoch 1 [##..................]  20/200   10%"));
  CHECK(contains(s, "200/200  100%"));
  CHECK(contains(s, "loss 1.0"));
}

TEST_CASE("progress, plain mode: finish with new metrics, early finish, and a zero total") {
  std::ostringstream os;
  progress p("eval", 4, {.out = &os, .mode = progress_mode::plain, .plain_every_percent = 50});
  p.advance();
  CHECK(count_lines(os.str()) == 0);
  p.advance();
  CHECK(count_lines(os.str()) == 1);  // 50%
  p.finish("acc 0.9");                // stopped early at 2/4: the final state is printed
  CHECK(count_lines(os.str()) == 2);
  CHECK(contains(os.str(), "2/4   50%"));
  CHECK(contains(os.str(), "acc 0.9"));
  p.finish();  // once only
  CHECK(count_lines(os.str()) == 2);

  std::ostringstream z;
  {
    progress q("nothing", 0, {.out = &z, .mode = progress_mode::plain});
    q.update(0);  // no division by zero with an unknown total
  }               // the destructor finishes
  CHECK(count_lines(z.str()) == 1);
  CHECK(contains(z.str(), "nothing"));
}

TEST_CASE("progress, tty mode: redraws in place, messages above the bar, a newline at the end") {
  std::ostringstream os;
  progress p("train", 3, {.out = &os, .mode = progress_mode::tty, .redraw_interval_s = 0});
  CHECK(p.is_tty());
  p.update(1);
  p.message("epoch 1: accuracy 50%");
  p.update(3);
  p.finish();
  const std::string s = os.str();
  CHECK(s.front() == '\r');
  CHECK(count_lines(s) == 2);  // the message and the final newline
  CHECK(contains(s, "\r\x1b[Kepoch 1: accuracy 50%\n"));
  CHECK(contains(s, "3/3  100%"));
  CHECK(s.back() == '\n');
}

TEST_CASE("progress: automatic mode on another stream is plain") {
  std::ostringstream os;
  progress p("x", 1, {.out = &os});
  CHECK_FALSE(p.is_tty());
  CHECK(p.elapsed() >= 0);
}

}  // namespace HYBRID_TEST_UNIT
