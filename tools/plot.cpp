// hybrid-plot: renders CSV metrics to PNG for docs/ (no Python, no fonts: tools/raster.hpp draws with a
// built-in 5x7 bitmap font and writes the PNG through libpng).
//
//   hybrid-plot curve --csv FILE --x COL --y COL[,COL...] --out FILE.png [--title T]
//       line chart of one or more columns against another (empty cells are skipped, so a metrics.csv whose
//       columns are logged at different steps plots as is); a marker on every point of sparse series
//   hybrid-plot bars --csv FILE --label COL --value COL [--error COL] --out FILE.png [--title T]
//       horizontal bars from 0, one per row, with +-error whiskers and the value written at the bar's end
//   hybrid-plot info FILE.png
//       decodes a PNG and prints "WIDTHxHEIGHT" (the CTest tools.plot uses it)
// Common options: --width W --height H (pixels, default 960 x 540), --scale S (text size, default 2).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "raster.hpp"

namespace {

using namespace hybrid::raster;

// ---- CSV ------------------------------------------------------------------------------------------------

struct csv_table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  std::size_t column(const std::string& name) const {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return i;
    std::string have;
    for (const auto& h : header) have += (have.empty() ? "" : ", ") + h;
    throw std::runtime_error("no column \"" + name + "\" (columns: " + have + ")");
  }
  const std::string& cell(std::size_t row, std::size_t col) const {
    static const std::string empty;
    return col < rows[row].size() ? rows[row][col] : empty;
  }
};

// RFC 4180: fields separated by commas, optionally quoted ("" is a quote inside quotes), CRLF or LF.
csv_table read_csv(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::vector<std::string>> lines(1);
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = any = true;
    } else if (c == ',') {
      lines.back().push_back(field), field.clear(), any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) lines.back().push_back(field);
      if (!lines.back().empty()) lines.emplace_back();
      field.clear(), any = false;
    } else {
      field += c, any = true;
    }
  }
  if (any || !field.empty()) lines.back().push_back(field);
  if (lines.back().empty()) lines.pop_back();
  if (lines.empty()) throw std::runtime_error(file + ": empty CSV");
  csv_table t;
  t.header = std::move(lines.front());
  t.rows.assign(std::make_move_iterator(lines.begin() + 1), std::make_move_iterator(lines.end()));
  return t;
}

std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep))
    if (!part.empty()) out.push_back(part);
  return out;
}

// ---- axes -----------------------------------------------------------------------------------------------

// Round tick positions (1, 2 or 5 times a power of ten) covering [lo, hi]; lo and hi widen to the outer ticks.
std::vector<double> nice_ticks(double& lo, double& hi, int target = 6) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / target, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> ticks;
  for (double v = lo; v <= hi + step * 1e-6; v += step) ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

// How many ticks fit along `pixels` with `spacing` pixels each (2 to 8).
int tick_count(int pixels, int spacing) { return std::clamp(pixels / std::max(1, spacing), 2, 8); }

std::string tick_label(double v, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct frame {  // the plot area in pixels and the data range it shows
  int left, top, right, bottom;
  double x0, x1, y0, y1;
  int px(double x) const { return left + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (right - left))); }
  int py(double y) const { return bottom - static_cast<int>(std::lround((y - y0) / (y1 - y0) * (bottom - top))); }
};

// Grid lines, the frame, tick labels below (x) and on the left (y; none for bar charts).
void draw_axes(canvas& cv, const frame& f, const std::vector<double>& xt, const std::vector<double>& yt, int s) {
  for (double x : xt) {
    cv.fill_rect(f.px(x), f.top, 1, f.bottom - f.top, light_grey);
    const std::string l = tick_label(x, xt.size() > 1 ? xt[1] - xt[0] : 1);
    cv.text(f.px(x) - text_width(l, s) / 2, f.bottom + 4 * s, l, black, s);
  }
  for (double y : yt) {
    cv.fill_rect(f.left, f.py(y), f.right - f.left, 1, light_grey);
    const std::string l = tick_label(y, yt.size() > 1 ? yt[1] - yt[0] : 1);
    cv.text(f.left - text_width(l, s) - 3 * s, f.py(y) - text_height(s) / 2 + s / 2, l, black, s);
  }
  cv.rect(f.left, f.top, f.right - f.left + 1, f.bottom - f.top + 1, black);
}

void draw_title(canvas& cv, const std::string& title, int s) {
  if (!title.empty()) cv.text((cv.width() - text_width(title, s)) / 2, 4 * s, title, black, s);
}

// ---- the two charts -------------------------------------------------------------------------------------

struct options {
  std::map<std::string, std::string> v;
  std::string get(const std::string& k, const std::string& fallback = "") const {
    const auto it = v.find(k);
    return it == v.end() ? fallback : it->second;
  }
  std::string need(const std::string& k) const {
    const auto it = v.find(k);
    if (it == v.end()) throw std::runtime_error("missing --" + k);
    return it->second;
  }
  int size(const std::string& k, int fallback) const { return std::max(1, std::stoi(get(k, std::to_string(fallback)))); }
};

void curve(const options& o) {
  const csv_table t = read_csv(o.need("csv"));
  const std::size_t xc = t.column(o.need("x"));
  const std::vector<std::string> names = split(o.need("y"), ',');
  if (names.empty()) throw std::runtime_error("--y names no column");
  std::vector<std::vector<std::pair<double, double>>> series;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& name : names) {
    const std::size_t yc = t.column(name);
    auto& pts = series.emplace_back();
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
      const auto x = number(t.cell(r, xc)), y = number(t.cell(r, yc));
      if (!x || !y) continue;  // empty cell: this metric was not logged at this step
      pts.emplace_back(*x, *y);
      x0 = std::min(x0, *x), x1 = std::max(x1, *x), y0 = std::min(y0, *y), y1 = std::max(y1, *y);
    }
    if (pts.empty()) throw std::runtime_error("column \"" + name + "\" has no numeric values");
  }
  const int s = o.size("scale", 2), W = o.size("width", 960), H = o.size("height", 540);
  canvas cv(W, H);
  draw_title(cv, o.get("title"), s);
  const std::vector<double> xt = nice_ticks(x0, x1, tick_count(W, 7 * glyph_w * s)),
                            yt = nice_ticks(y0, y1, tick_count(H, 4 * glyph_h * s));
  int label_w = 0;
  for (double y : yt) label_w = std::max(label_w, text_width(tick_label(y, yt.size() > 1 ? yt[1] - yt[0] : 1), s));
  const int right = W - std::max(10 * s, text_width(tick_label(xt.back(), xt.size() > 1 ? xt[1] - xt[0] : 1), s) / 2 + 4 * s);
  const frame f{label_w + 8 * s, (o.get("title").empty() ? 6 : 16) * s, right, H - 26 * s, x0, x1, y0, y1};
  draw_axes(cv, f, xt, yt, s);
  const std::string xl = o.need("x");
  cv.text((f.left + f.right - text_width(xl, s)) / 2, H - 11 * s, xl, black, s);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& pts = series[k];
    for (std::size_t i = 1; i < pts.size(); ++i)
      cv.line(f.px(pts[i - 1].first), f.py(pts[i - 1].second), f.px(pts[i].first), f.py(pts[i].second), palette(k), s);
    if (pts.size() <= 40)
      for (const auto& [x, y] : pts) cv.fill_rect(f.px(x) - 2 * s, f.py(y) - 2 * s, 4 * s + 1, 4 * s + 1, palette(k));
  }
  // The legend, top right inside the plot area.
  int legend_w = 0;
  for (const auto& n : names) legend_w = std::max(legend_w, text_width(n, s));
  legend_w += 18 * s;
  const int line_h = 11 * s, lx = f.right - legend_w - 6 * s, ly = f.top + 6 * s;
  cv.fill_rect(lx, ly, legend_w, static_cast<int>(names.size()) * line_h + 4 * s, white);
  cv.rect(lx, ly, legend_w, static_cast<int>(names.size()) * line_h + 4 * s, grey);
  for (std::size_t k = 0; k < names.size(); ++k) {
    const int y = ly + 3 * s + static_cast<int>(k) * line_h;
    cv.fill_rect(lx + 3 * s, y + 3 * s, 10 * s, 2 * s, palette(k));
    cv.text(lx + 15 * s, y, names[k], black, s);
  }
  cv.save(o.need("out"));
}

void bars(const options& o) {
  const csv_table t = read_csv(o.need("csv"));
  const std::size_t lc = t.column(o.need("label")), vc = t.column(o.need("value"));
  const bool has_error = o.v.count("error") != 0;  // (not std::optional: GCC 12 warns maybe-uninitialized)
  const std::size_t ec = has_error ? t.column(o.need("error")) : 0;
  struct bar {
    std::string label;
    double value, error;
    std::string value_text, error_text;
  };
  std::vector<bar> rows;
  double hi = 0, lo = 0;
  for (std::size_t r = 0; r < t.rows.size(); ++r) {
    const auto v = number(t.cell(r, vc));
    if (!v) continue;
    const double e = has_error ? number(t.cell(r, ec)).value_or(0.0) : 0.0;
    rows.push_back({t.cell(r, lc), *v, e, t.cell(r, vc), has_error ? t.cell(r, ec) : ""});
    hi = std::max(hi, *v + e), lo = std::min(lo, *v - e);
  }
  if (rows.empty()) throw std::runtime_error("column \"" + o.need("value") + "\" has no numeric values");
  const int s = o.size("scale", 2), W = o.size("width", 960);
  const int bar_h = 12 * s, gap = 5 * s, top = (o.get("title").empty() ? 6 : 16) * s;
  const int H = o.size("height", top + static_cast<int>(rows.size()) * (bar_h + gap) + gap + 16 * s);
  canvas cv(W, H);
  draw_title(cv, o.get("title"), s);
  int label_w = 0, value_w = 0;
  std::vector<std::string> value_text;
  for (const auto& b : rows) {
    label_w = std::max(label_w, text_width(b.label, s));
    value_text.push_back(b.value_text + (b.error > 0 ? " ± " + b.error_text : ""));  // as the CSV writes them
    value_w = std::max(value_w, text_width(value_text.back(), s));
  }
  const std::vector<double> xt = nice_ticks(lo, hi, tick_count(W - label_w - value_w, 7 * glyph_w * s));
  const frame f{label_w + 8 * s, top, W - value_w - 10 * s, H - 16 * s, lo, hi, 0, 1};
  draw_axes(cv, f, xt, {}, s);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const bar& b = rows[i];
    const int y = f.top + gap + static_cast<int>(i) * (bar_h + gap);
    const int a = f.px(std::min(0.0, b.value)), z = f.px(std::max(0.0, b.value));
    cv.text(f.left - text_width(b.label, s) - 4 * s, y + (bar_h - text_height(s)) / 2 + s, b.label, black, s);
    cv.fill_rect(a, y, z - a + 1, bar_h, palette(0));
    if (b.error > 0) {
      const int e0 = f.px(b.value - b.error), e1 = f.px(b.value + b.error), ym = y + bar_h / 2;
      cv.fill_rect(e0, ym - s / 2, e1 - e0 + 1, std::max(1, s / 2 + 1), black);
      cv.fill_rect(e0, y + 2 * s, std::max(1, s / 2 + 1), bar_h - 4 * s, black);
      cv.fill_rect(e1, y + 2 * s, std::max(1, s / 2 + 1), bar_h - 4 * s, black);
    }
    cv.text(std::max(z, f.px(b.value + b.error)) + 6 * s, y + (bar_h - text_height(s)) / 2 + s, value_text[i], black, s);
  }
  cv.save(o.need("out"));
}

int usage() {
  std::cerr << "usage: hybrid-plot curve --csv FILE --x COL --y COL[,COL...] --out FILE.png [--title T]\n"
               "       hybrid-plot bars --csv FILE --label COL --value COL [--error COL] --out FILE.png [--title T]\n"
               "       hybrid-plot info FILE.png\n"
               "options: --width W --height H --scale S\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  try {
    if (cmd == "info" && argc == 3) {
      const hybrid::io::image8 img = hybrid::io::read_png(std::filesystem::path(argv[2]));
      std::printf("%dx%d\n", img.width, img.height);
      return 0;
    }
    options o;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.rfind("--", 0) != 0 || i + 1 >= argc) return usage();
      o.v[a.substr(2)] = argv[++i];
    }
    if (cmd == "curve") curve(o);
    else if (cmd == "bars") bars(o);
    else return usage();
  } catch (const std::exception& e) {
    std::cerr << "hybrid-plot: " << e.what() << "\n";
    return 1;
  }
}
