// Shared helpers of the benchmarks: repeated timing (median and min after a warm-up), a small
// Markdown table printer, peak RSS, and a header naming the machine so pasted tables carry their context.
#pragma once
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hybrid::bench {

using clock = std::chrono::steady_clock;

inline double ms_since(clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
}

// CPU time of the calling thread: for single-threaded code on a shared machine it is far steadier
// than wall time, since time spent descheduled does not count.
inline double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Timings of one measurement, in milliseconds. The median is what we compare (robust to the
// other tenants of a shared 2-core machine); the min says what the code can do undisturbed.
class samples {
 public:
  void add(double ms) { v_.push_back(ms); }
  std::size_t size() const { return v_.size(); }
  double median() const {
    if (v_.empty()) return 0;
    std::vector<double> s = v_;
    std::sort(s.begin(), s.end());
    const std::size_t n = s.size();
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
  }
  double min() const { return v_.empty() ? 0 : *std::min_element(v_.begin(), v_.end()); }
  double max() const { return v_.empty() ? 0 : *std::max_element(v_.begin(), v_.end()); }

 private:
  std::vector<double> v_;
};

struct repeat {
  int warmup = 2;        // untimed runs first: page faults, lazily started thread pools, caches
  int min_reps = 5;      // at least this many timed runs...
  int max_reps = 50;     // ...and at most this many,
  double budget_ms = 400;  // stopping once this much time has been measured
};

// Runs f() `warmup` times, then times it until the budget is spent (within min/max reps).
template <class F>
samples time_it(F&& f, repeat r = {}) {
  for (int i = 0; i < r.warmup; ++i) f();
  samples s;
  double total = 0;
  while (static_cast<int>(s.size()) < r.max_reps && (static_cast<int>(s.size()) < r.min_reps || total < r.budget_ms)) {
    const auto t0 = clock::now();
    f();
    const double ms = ms_since(t0);
    s.add(ms);
    total += ms;
  }
  return s;
}

// Wall time and the calling thread's CPU time of the same runs.
struct measurement {
  samples wall, cpu;
};

// Times n variants round-robin (variant 0, 1, ..., n-1, then again), so bursts of load from other
// tenants hit all of them alike and their ratios stay meaningful. run(i) runs variant i once.
template <class F>
std::vector<measurement> time_interleaved(std::size_t n, F&& run, repeat r = {}) {
  for (int w = 0; w < r.warmup; ++w)
    for (std::size_t i = 0; i < n; ++i) run(i);
  std::vector<measurement> m(n);
  double total = 0;
  for (int round = 0; round < r.max_reps && (round < r.min_reps || total < r.budget_ms * static_cast<double>(n));
       ++round)
    for (std::size_t i = 0; i < n; ++i) {
      const auto t0 = clock::now();
      const double c0 = thread_cpu_ms();
      run(i);
      const double ms = ms_since(t0);
      m[i].wall.add(ms);
      m[i].cpu.add(thread_cpu_ms() - c0);
      total += ms;
    }
  return m;
}

// Keeps a value alive against the optimizer without a memory round trip.
template <class T>
inline void do_not_optimize(const T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

// Concatenation through a stream: GCC 12 at -O3 warns falsely (-Wrestrict, PR 105329) on
// `"literal" + std::string`, so the benchmarks build their strings with this.
template <class... A>
std::string cat(const A&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

inline std::string fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
// "median (min)" in ms, the form every table uses.
inline std::string ms_cell(const samples& s, int digits = 2) {
  return cat(fixed(s.median(), digits), " (", fixed(s.min(), digits), ")");
}

// A Markdown pipe table, columns padded so it also reads well in a terminal.
class table {
 public:
  explicit table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) {
    row.resize(header_.size());
    rows_.push_back(std::move(row));
  }
  void print(std::ostream& os = std::cout) const {
    std::vector<std::size_t> w(header_.size());
    for (std::size_t c = 0; c < w.size(); ++c) {
      w[c] = std::max<std::size_t>(3, header_[c].size());
      for (const auto& r : rows_) w[c] = std::max(w[c], r[c].size());
    }
    auto line = [&](const std::vector<std::string>& r, bool left_first) {
      os << '|';
      for (std::size_t c = 0; c < w.size(); ++c) {
        const std::string pad(w[c] - r[c].size(), ' ');
        if (c == 0 && left_first) os << ' ' << r[c] << pad << " |";
        else os << ' ' << pad << r[c] << " |";
      }
      os << '\n';
    };
    line(header_, true);
    os << '|';
    for (std::size_t c = 0; c < w.size(); ++c)  // first column left-aligned, numbers right-aligned
      os << (c == 0 ? ":" : "") << std::string(w[c] + 1, '-') << (c == 0 ? "|" : ":|");
    os << '\n';
    for (const auto& r : rows_) line(r, true);
    os << '\n';
  }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB).
inline double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

inline std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}
inline std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return cat(a, ' ', b, ' ', c);
}

// `--name=value` from the command line, or `fallback`.
inline std::string arg(int argc, char** argv, std::string_view name, std::string fallback = "") {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.size() > name.size() + 2 && a.substr(0, 2) == "--" && a.substr(2, name.size()) == name &&
        a[2 + name.size()] == '=')
      return std::string(a.substr(3 + name.size()));
  }
  return fallback;
}
inline bool flag(int argc, char** argv, std::string_view name) {
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]).substr(0, 2) == "--" && std::string_view(argv[i]).substr(2) == name) return true;
  return false;
}

inline void print_header(std::string_view title, std::string_view extra = "") {
  std::cout << "## " << title << "\n\n"
            << "- CPU: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " hardware threads\n"
            << "- load average at start: " << load_average() << '\n';
  if (!extra.empty()) std::cout << extra;
  std::cout << '\n';
}

}  // namespace hybrid::bench
