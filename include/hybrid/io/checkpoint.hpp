// Checkpoints of any module: every parameter under its dotted name in a safetensors file (F32, written
// atomically), loaded back by name with prefix/rename mapping, strictness checks and dtype conversion.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "hybrid/core/compiled.hpp"
#include "hybrid/io/safetensors.hpp"
#include "hybrid/layers/module.hpp"

namespace hybrid::io {

// A checkpoint that does not fit the module: missing parameters, a tensor of a non-float dtype, two
// tensors claiming one parameter, unexpected tensors (when asked to be strict about them).
// Mis-shaped tensors throw hybrid::shape_error instead; a file breaking the format, io::format_error.
class checkpoint_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// F32 tensors ready for save_safetensors: float values are viewed in place (so they must outlive the
// save), other types are rounded into copies held here.
class f32_tensors {
 public:
  template <class T>
  void add(std::string name, const hybrid::shape& s, std::span<const T> values) {
    std::vector<std::int64_t> dims;
    for (int i = 0; i < s.rank(); ++i) dims.push_back(s[i]);
    if constexpr (std::is_same_v<T, float>) {
      tensors_.push_back({std::move(name), std::move(dims), values});
    } else {
      // Moving the inner vectors when copies_ grows keeps their buffers, so earlier spans stay valid.
      std::vector<float>& c = copies_.emplace_back(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) c[i] = static_cast<float>(values[i]);
      tensors_.push_back({std::move(name), std::move(dims), std::span<const float>(c)});
    }
  }
  // Every parameter of m, named prefix.<dotted name>.
  template <module M>
  void add_parameters(M& m, const std::string& prefix = "") {
    m.visit(prefix, [&](const std::string& name, parameter<typename M::value_type>& p) {
      add(name, p.shape(), std::span<const typename M::value_type>(p.value().span()));
    });
  }
  std::span<const tensor_to_write> tensors() const { return tensors_; }

 private:
  std::vector<tensor_to_write> tensors_;
  std::vector<std::vector<float>> copies_;
};

// Writes every parameter of m as F32 under its dotted name (prefixed by `prefix` if given), atomically:
// readers see the old file or the complete new one. Non-float parameters are rounded to float.
template <module M>
void save_parameters(M& m, const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {},
                     const std::string& prefix = "") {
  f32_tensors t;
  t.add_parameters(m, prefix);
  save_safetensors(path, t.tensors(), metadata);
}

// What to do with file tensors that match no parameter.
enum class unexpected_tensors { error, report, ignore };

// How file tensor names map onto parameter names: strip_prefix, then add_prefix, then rename.
struct load_options {
  std::string strip_prefix{};  // "bert": "bert.x" is matched as "x"; names without the prefix stay as they are
  std::string add_prefix{};    // "text": "x" is matched as "text.x"
  // Applied last; returns the parameter name to match, or "" to skip the tensor (listed in `skipped`).
  std::function<std::string(const std::string&)> rename{};
  bool strict = true;  // every parameter must be in the file; otherwise missing ones keep their values
  unexpected_tensors unexpected = unexpected_tensors::report;
};

struct load_report {
  std::vector<std::string> loaded;              // parameter names, in the module's order
  std::vector<std::string> missing;             // parameters not in the file (only with strict = false)
  std::vector<std::string> unexpected;          // file names of tensors matching no parameter (unless ignored)
  std::vector<std::string> skipped;             // file names that `rename` dropped
  std::map<std::string, std::string> metadata;  // the file's __metadata__
};

namespace detail::ckpt {

inline std::string trim_dot(std::string s) {
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

HYBRID_DECL std::string map_name(const std::string& file_name, const load_options& o);

inline bool is_float(dtype t) {
  return t == dtype::F64 || t == dtype::F32 || t == dtype::F16 || t == dtype::BF16 || t == dtype::F8_E5M2 ||
         t == dtype::F8_E4M3;
}

HYBRID_DECL std::string name_list(const std::vector<std::string>& names, std::size_t shown = 8);

}  // namespace detail::ckpt

// Loads m's parameters from an open file. Everything is checked before anything is written, so on any
// error m is left unchanged. Float dtypes (F64, F32, F16, BF16, F8) convert to the module's type.
template <module M>
load_report load_parameters(M& m, const safetensors_reader& r, const load_options& opt = {}) {
  using T = typename M::value_type;
  using detail::cat;
  const std::string where = cat("load_parameters: '", r.source(), "': ");
  load_report rep;
  rep.metadata = r.metadata();

  const auto& tensors = r.tensors();
  std::vector<std::string> mapped(tensors.size());
  std::map<std::string, const tensor_info*, std::less<>> by_param;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const tensor_info& t = tensors[i];
    const std::string& name = mapped[i] = detail::ckpt::map_name(t.name, opt);
    if (name.empty()) {
      rep.skipped.push_back(t.name);
      continue;
    }
    auto [it, fresh] = by_param.emplace(name, &t);
    if (!fresh)
      throw checkpoint_error(
          cat(where, "tensors '", it->second->name, "' and '", t.name, "' both map to parameter '", name, '\''));
  }

  struct step {
    parameter<T>* p;
    const tensor_info* t;
  };
  std::vector<step> plan;
  std::unordered_set<std::string> seen;
  m.visit("", [&](const std::string& name, parameter<T>& p) {
    if (!seen.insert(name).second)
      throw checkpoint_error(cat(where, "the module has two parameters named '", name, '\''));
    auto it = by_param.find(name);
    if (it == by_param.end()) {
      rep.missing.push_back(name);
      return;
    }
    const tensor_info& t = *it->second;
    if (!detail::ckpt::is_float(t.type))
      throw checkpoint_error(cat(where, "tensor '", t.name, "' has dtype ", dtype_name(t.type), ", but parameter '",
                                 name,
                                 "' loads only from floating-point tensors (F64, F32, F16, BF16, F8_E5M2, F8_E4M3)"));
    const hybrid::shape& s = p.shape();
    bool same = t.shape.size() == static_cast<std::size_t>(s.rank());
    for (int i = 0; same && i < s.rank(); ++i) same = t.shape[static_cast<std::size_t>(i)] == s[i];
    if (!same)
      throw shape_error(cat("load_parameters: checkpoint tensor '", t.name, "' ", detail::st::shape_string(t.shape),
                            " does not fit parameter '", name, "' ", s.str(), " (file '", r.source(), "')"));
    plan.push_back({&p, &t});
    rep.loaded.push_back(name);
  });

  if (!rep.missing.empty() && opt.strict) {
    std::string hint;
    const std::string tail = cat('.', rep.missing.front());
    for (const tensor_info& t : tensors)
      if (t.name.size() > tail.size() && t.name.compare(t.name.size() - tail.size(), tail.size(), tail) == 0) {
        hint = cat(" (the file has '", t.name, "': a name prefix to strip?)");
        break;
      }
    throw checkpoint_error(cat(where, rep.missing.size(), rep.missing.size() == 1 ? " parameter" : " parameters",
                               " not found: ", detail::ckpt::name_list(rep.missing), hint));
  }
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (!mapped[i].empty() && !seen.contains(mapped[i])) rep.unexpected.push_back(tensors[i].name);
  if (!rep.unexpected.empty() && opt.unexpected == unexpected_tensors::error)
    throw checkpoint_error(cat(where, rep.unexpected.size(),
                               rep.unexpected.size() == 1 ? " tensor matches" : " tensors match",
                               " no parameter: ", detail::ckpt::name_list(rep.unexpected)));
  if (opt.unexpected == unexpected_tensors::ignore) rep.unexpected.clear();

  for (const step& s : plan) r.read_into<T>(s.t->name, s.p->value().span());
  return rep;
}

// Opens `path` (I/O failures: std::system_error; a broken file: io::format_error) and loads from it.
template <module M>
load_report load_parameters(M& m, const std::filesystem::path& path, const load_options& opt = {}) {
  return load_parameters(m, safetensors_reader::open(path), opt);
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL std::string detail::ckpt::map_name(const std::string& file_name, const load_options& o) {
  std::string name = file_name;
  if (const std::string p = trim_dot(o.strip_prefix);
      !p.empty() && name.size() > p.size() && name.compare(0, p.size(), p) == 0 && name[p.size()] == '.')
    name.erase(0, p.size() + 1);
  name = join_name(trim_dot(o.add_prefix), name);
  return o.rename ? o.rename(name) : name;
}

HYBRID_DECL std::string detail::ckpt::name_list(const std::vector<std::string>& names, std::size_t shown) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) s += cat(i ? ", '" : "'", names[i], '\'');
  if (names.size() > shown) s += cat(" and ", names.size() - shown, " more");
  return s;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
