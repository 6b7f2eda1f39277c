// Metrics CSV writer: a fixed header, one RFC 4180 row per call, flushed at once so a crashed run keeps its data.
// Read it with pandas, a spreadsheet or gnuplot; `log(step, metrics)` fills columns by name.
#pragma once

#include <cerrno>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace hybrid::io {

// Appends one CSV field to `out`, quoted (with inner quotes doubled) when it holds a comma, quote, CR or LF.
inline void csv_append_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(field);
    return;
  }
  out.push_back('"');
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

// A metrics log: `csv_log log("run/metrics.csv", {"step", "loss", "acc"});` then `log.row(1, 0.5, 0.9)` or
// `log.log(1, {{"loss", 0.5}})`. Numbers are written with std::to_chars (shortest form that reads back
// exactly), bools as true/false, std::nullopt / empty std::optional as an empty cell. Lines end in "\n".
// Every row is written with one fwrite and flushed, so a crash loses at most the row being written.
class csv_log {
 public:
  enum class open_mode {
    truncate,  // start a new file (replacing any old one) with the header
    append,    // resume: keep existing rows; the existing header must equal `columns`
  };

  csv_log(const std::filesystem::path& file, std::vector<std::string> columns, open_mode mode = open_mode::truncate)
      : path_(file), columns_(std::move(columns)) {
    if (columns_.empty()) throw std::invalid_argument("hybrid::io::csv_log: no columns");
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      if (columns_[i].find_first_of("\r\n") != std::string::npos)
        throw std::invalid_argument("hybrid::io::csv_log: column name with a line break: " + columns_[i]);
      for (std::size_t j = 0; j < i; ++j)
        if (columns_[j] == columns_[i])
          throw std::invalid_argument("hybrid::io::csv_log: duplicate column " + columns_[i]);
    }
    std::string header;
    for (std::size_t i = 0; i < columns_.size(); ++i) {
      if (i != 0) header.push_back(',');
      csv_append_field(header, columns_[i]);
    }

    bool write_header = true;
    bool need_newline = false;
    if (mode == open_mode::append) {
      if (std::unique_ptr<std::FILE, closer> old{std::fopen(path_.string().c_str(), "rb")}) {
        std::string first;
        int c = 0;
        while ((c = std::fgetc(old.get())) != EOF && c != '\n') first.push_back(static_cast<char>(c));
        if (!first.empty() && first.back() == '\r') first.pop_back();
        if (!first.empty() || c != EOF) {
          if (first != header)
            throw std::runtime_error("hybrid::io::csv_log: " + path_.string() + " has header \"" + first +
                                     "\", expected \"" + header + "\"");
          write_header = false;
          // A run killed mid-row leaves no final newline: start the next row on a line of its own.
          if (std::fseek(old.get(), -1, SEEK_END) == 0) need_newline = std::fgetc(old.get()) != '\n';
        }
      }
    }
    file_.reset(std::fopen(path_.string().c_str(), mode == open_mode::append ? "ab" : "wb"));
    if (!file_) fail("cannot open");
    line_.clear();
    if (need_newline) line_.push_back('\n');
    if (write_header) line_.append(header).push_back('\n');
    write_line();
  }

  // One row with exactly one value per column, in column order.
  template <class... Ts>
  void row(const Ts&... values) {
    if (sizeof...(Ts) != columns_.size())
      throw std::invalid_argument("hybrid::io::csv_log::row: " + std::to_string(sizeof...(Ts)) + " values for " +
                                  std::to_string(columns_.size()) + " columns in " + path_.string());
    line_.clear();
    bool first = true;
    ((first ? void(first = false) : line_.push_back(','), append_value(line_, values)), ...);
    line_.push_back('\n');
    write_line();
  }

  // One row by column name: `step` goes to the column named "step" (which must exist), each metric to
  // its column; columns without a metric stay empty. A name that is not a column throws.
  template <class Metrics>
    requires requires(const Metrics& m) {
      { std::string_view(m.begin()->first) };
      requires std::is_arithmetic_v<std::remove_cvref_t<decltype(m.begin()->second)>>;
    }
  void log(std::int64_t step, const Metrics& metrics) {
    cells_.assign(columns_.size(), std::string());
    std::vector<bool> filled(columns_.size(), false);
    set_cell(filled, "step", step);
    for (const auto& [name, value] : metrics) set_cell(filled, std::string_view(name), value);
    line_.clear();
    for (std::size_t i = 0; i < cells_.size(); ++i) {
      if (i != 0) line_.push_back(',');
      line_.append(cells_[i]);
    }
    line_.push_back('\n');
    write_line();
  }
  void log(std::int64_t step, std::initializer_list<std::pair<std::string_view, double>> metrics) {
    log<std::initializer_list<std::pair<std::string_view, double>>>(step, metrics);
  }

  const std::vector<std::string>& columns() const noexcept { return columns_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  struct closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
  };

  template <class>
  static constexpr bool unsupported = false;

  template <class T>
  static void append_value(std::string& out, const T& v) {
    if constexpr (std::is_same_v<T, std::nullopt_t>) {
      // empty cell
    } else if constexpr (requires { typename T::value_type; requires std::is_same_v<T, std::optional<typename T::value_type>>; }) {
      if (v) append_value(out, *v);
    } else if constexpr (std::is_same_v<T, bool>) {
      out.append(v ? "true" : "false");
    } else if constexpr (std::is_same_v<T, char>) {
      csv_append_field(out, std::string_view(&v, 1));
    } else if constexpr (std::is_arithmetic_v<T>) {
      // Format in place: appending from a stack buffer trips GCC 12's false -Wrestrict (PR 105329).
      const std::size_t at = out.size();
      out.resize(at + 64);
      const auto r = std::to_chars(out.data() + at, out.data() + out.size(), v);
      out.resize(static_cast<std::size_t>(r.ptr - out.data()));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      csv_append_field(out, std::string_view(v));
    } else {
      static_assert(unsupported<T>,
                    "csv_log: a value must be a number, bool, string, std::optional of one, or std::nullopt");
    }
  }

  template <class T>
  void set_cell(std::vector<bool>& filled, std::string_view name, const T& value) {
    std::size_t i = 0;
    while (i < columns_.size() && columns_[i] != name) ++i;
    if (i == columns_.size())
      throw std::invalid_argument("hybrid::io::csv_log::log: no column \"" + std::string(name) + "\" in " +
                                  path_.string());
    if (filled[i])
      throw std::invalid_argument("hybrid::io::csv_log::log: column \"" + std::string(name) + "\" given twice");
    filled[i] = true;
    append_value(cells_[i], value);
  }

  void write_line() {
    if (!file_) throw std::logic_error("hybrid::io::csv_log: used after being moved from");
    if (line_.empty()) return;
    if (std::fwrite(line_.data(), 1, line_.size(), file_.get()) != line_.size() || std::fflush(file_.get()) != 0)
      fail("cannot write");
  }

  [[noreturn]] void fail(const char* what) const {
    throw std::system_error(errno, std::generic_category(),
                            std::string("hybrid::io::csv_log: ") + what + " " + path_.string());
  }

  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::unique_ptr<std::FILE, closer> file_;
  std::string line_;                 // scratch for the row being written
  std::vector<std::string> cells_;  // scratch for log()
};

}  // namespace hybrid::io
