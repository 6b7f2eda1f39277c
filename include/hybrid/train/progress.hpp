// A terminal progress bar for long loops: label, bar, done/total, rate, elapsed, ETA and a metrics text.
// On a terminal it redraws one line in place ('\r'); elsewhere (CI logs, files) it prints a plain line every N%.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "hybrid/core/compiled.hpp"
#include "hybrid/core/shape.hpp"

namespace hybrid::train {

enum class progress_mode {
  automatic,  // tty when writing to std::cout and stdout is a terminal, plain otherwise
  tty,        // one line redrawn in place
  plain,      // one full line per `plain_every_percent` (logs stay short and readable)
};

struct progress_options {
  std::ostream* out = nullptr;     // nullptr: std::cout
  progress_mode mode = progress_mode::automatic;
  int plain_every_percent = 10;    // plain mode: a line each time the percentage passes a multiple of this
  int bar_width = 20;              // characters between the brackets
  double redraw_interval_s = 0.1;  // tty mode: at most this often (redrawing every step costs more than small steps)
  std::string unit = "it";         // what done/total count, shown in the rate: "12.5 it/s"
};

// "m:ss" below an hour, "h:mm:ss" above; "--:--" when unknown (negative, NaN or infinite).
HYBRID_DECL std::string format_duration(double seconds);

// "1.23 it/s", "45.6 it/s", "789 it/s", "12.3k it/s", "4.56M it/s"; "-- it/s" when unknown: three significant
// digits keep the line's width steady while the rate changes.
HYBRID_DECL std::string format_rate(double per_second, std::string_view unit = "it");

// What one line shows, given the state: a pure function, so the format is testable without a clock.
// "label [#########...........]  45/100  45%  9.00 it/s  0:05 < ETA 0:06  metrics"
// total <= 0 means unknown: no bar fill, no percentage, no ETA.
HYBRID_DECL std::string format_progress_line(std::string_view label, index_t done, index_t total, double elapsed_s,
                                             std::string_view metrics = {}, int bar_width = 20,
                                             std::string_view unit = "it");

// One bar for one loop: construct it before the loop (the clock starts), call update() as items finish and
// finish() after the loop. message() prints a line above the bar without breaking it.
class progress {
 public:
  explicit progress(std::string label, index_t total, progress_options o = {});
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() {
    if (!finished_) finish();
  }

  bool is_tty() const { return tty_; }
  index_t done() const { return done_; }
  index_t total() const { return total_; }
  double elapsed() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }

  // `done` items so far (absolute), with an optional metrics text shown at the end of the line.
  void update(index_t done, std::string_view metrics = {});
  void advance(index_t n = 1, std::string_view metrics = {}) { update(done_ + n, metrics); }

  // A line of its own (an evaluation result, a note) printed above the bar; the bar is redrawn below it.
  void message(std::string_view text);

  // The final state on its own line (once); returns the elapsed seconds.
  double finish(std::string_view metrics = {});

  std::string line() const {
    return format_progress_line(label_, done_, total_, elapsed(), metrics_, opt_.bar_width, opt_.unit);
  }

 private:
  using clock = std::chrono::steady_clock;
  void draw() {
    last_draw_ = elapsed();
    // "\x1b[K" erases what a longer previous line left to the right.
    *out_ << '\r' << line() << "\x1b[K" << std::flush;
  }

  std::string label_;
  index_t total_;
  progress_options opt_;
  std::ostream* out_;
  clock::time_point t0_;
  bool tty_ = false, finished_ = false;
  index_t done_ = 0, last_mark_ = 0;
  double last_draw_ = -1;
  std::string metrics_;
};

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

HYBRID_DECL std::string format_rate(double per_second, std::string_view unit) {
  char buf[48];
  const std::string u(unit);
  if (!std::isfinite(per_second) || per_second <= 0) std::snprintf(buf, sizeof buf, "-- %s/s", u.c_str());
  else if (per_second >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM %s/s", per_second / 1e6, u.c_str());
  else if (per_second >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk %s/s", per_second / 1e3, u.c_str());
  else if (per_second >= 100) std::snprintf(buf, sizeof buf, "%.0f %s/s", per_second, u.c_str());
  else if (per_second >= 10) std::snprintf(buf, sizeof buf, "%.1f %s/s", per_second, u.c_str());
  else std::snprintf(buf, sizeof buf, "%.2f %s/s", per_second, u.c_str());
  return buf;
}

HYBRID_DECL std::string format_progress_line(std::string_view label, index_t done, index_t total, double elapsed_s,
                                             std::string_view metrics, int bar_width, std::string_view unit) {
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  const double fraction = total > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0) : 0;
  std::string s(label);
  if (bar_width > 0) {
    const auto filled = static_cast<int>(fraction * bar_width);
    s += " [" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(bar_width - filled), '.') + "]";
  }
  char buf[64];
  if (total > 0) std::snprintf(buf, sizeof buf, "  %lld/%lld  %3d%%", static_cast<long long>(done),
                               static_cast<long long>(total), static_cast<int>(fraction * 100));
  else std::snprintf(buf, sizeof buf, "  %lld", static_cast<long long>(done));
  s += buf;
  s += "  " + format_rate(rate, unit);
  // No ETA before the first item: there is no rate to extrapolate from yet.
  const double eta = total > 0 && rate > 0 ? static_cast<double>(std::max<index_t>(total - done, 0)) / rate : -1;
  s += "  " + format_duration(elapsed_s) + " < ETA " + format_duration(eta);
  if (!metrics.empty()) {
    s += "  ";
    s += metrics;
  }
  return s;
}

HYBRID_DECL progress::progress(std::string label, index_t total, progress_options o)
    : label_(std::move(label)), total_(total), opt_(std::move(o)), out_(opt_.out ? opt_.out : &std::cout),
      t0_(clock::now()) {
  tty_ = opt_.mode == progress_mode::tty ||
         (opt_.mode == progress_mode::automatic && out_ == &std::cout && ::isatty(STDOUT_FILENO));
  if (tty_) draw();
}

HYBRID_DECL void progress::update(index_t done, std::string_view metrics) {
  done_ = done;
  if (!metrics.empty() || metrics_.empty()) metrics_ = metrics;
  if (tty_) {
    const double now = elapsed();
    if (now - last_draw_ >= opt_.redraw_interval_s || (total_ > 0 && done_ >= total_)) draw();
    return;
  }
  if (total_ <= 0 || opt_.plain_every_percent <= 0) return;
  const index_t percent = std::min<index_t>(100, done_ * 100 / total_);
  const index_t mark = percent / opt_.plain_every_percent * opt_.plain_every_percent;
  if (mark > last_mark_ && mark > 0) {
    last_mark_ = mark;
    *out_ << line() << '\n' << std::flush;
  }
}

HYBRID_DECL void progress::message(std::string_view text) {
  if (tty_) *out_ << "\r\x1b[K";
  *out_ << text << '\n';
  if (tty_) draw();
  else *out_ << std::flush;
}

HYBRID_DECL double progress::finish(std::string_view metrics) {
  if (!metrics.empty()) metrics_ = metrics;
  const double t = elapsed();
  if (finished_) return t;
  finished_ = true;
  if (tty_) {
    draw();
    *out_ << '\n' << std::flush;
  } else if (last_mark_ < 100 || !metrics.empty()) {
    *out_ << line() << '\n' << std::flush;
  }
  return t;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::train
