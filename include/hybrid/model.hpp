// model<encoders<modality<"name", Encoder>...>, Fusion, heads<Head...>>: a multimodal, multi-task
// model composed as flat type lists; widths are checked at compile time, names are dotted paths.
#pragma once
#include <array>
#include <span>
#include <string_view>
#include <tuple>
#include <utility>

#include "hybrid/batch.hpp"
#include "hybrid/core/fixed_string.hpp"
#include "hybrid/fuse/fusion.hpp"
#include "hybrid/head/head.hpp"

namespace hybrid {

template <fixed_string Name, class Encoder>
struct modality {
  static constexpr std::string_view name = Name.view();
  using encoder_type = Encoder;
  static_assert(enc::encoder<Encoder>, "modality: the type given is not an encoder (see enc/encoder.hpp)");
};

template <class... Modalities>
struct encoders {
  static_assert(sizeof...(Modalities) >= 1, "encoders<...>: at least one modality");
};
template <class... Heads>
struct heads {
  static_assert(sizeof...(Heads) >= 1, "heads<...>: at least one head");
};

// Predictions per head, in the order of heads<...>, plus the fused representation.
template <class T>
struct model_output {
  var<T> fused;
  std::vector<var<T>> predictions;
  std::span<const std::string_view> names;
  const var<T>& operator[](std::string_view head) const {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == head) return predictions[i];
    throw std::out_of_range("model output: no head named '" + std::string(head) + "'");
  }
};

namespace detail {
template <std::size_t N>
constexpr std::size_t index_of(std::string_view name, const std::array<std::string_view, N>& names) {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return i;
  return N;
}
}  // namespace detail

template <class Encoders, class Fusion, class Heads>
class model;

template <class... Mods, class Fusion, class... Heads>
class model<encoders<Mods...>, Fusion, heads<Heads...>> {
  using first_encoder = std::tuple_element_t<0, std::tuple<typename Mods::encoder_type...>>;

 public:
  using value_type = typename first_encoder::value_type;
  using T = value_type;
  static_assert((std::is_same_v<typename Mods::encoder_type::value_type, T> && ...),
                "model: all encoders must use the same scalar type");
  using fusion_type = typename Fusion::template op<T, Mods::encoder_type::width...>;
  static_assert(fuse::fusion_op<fusion_type, T>, "model: the fusion slot does not hold a fusion operator");
  static constexpr index_t fused_width = fusion_type::width;
  static constexpr std::size_t modality_count = sizeof...(Mods);
  static constexpr std::size_t head_count = sizeof...(Heads);
  static constexpr std::array<std::string_view, modality_count> modality_names{Mods::name...};
  static constexpr std::array<std::string_view, head_count> head_names{std::string_view(Heads::name)...};

  template <fixed_string Name>
  static constexpr std::size_t modality_index = detail::index_of(Name.view(), modality_names);
  template <fixed_string Name>
  static constexpr std::size_t head_index = detail::index_of(Name.view(), head_names);

  model() { assign_names(*this); }
  explicit model(std::uint64_t dropout_seed) : rng_{dropout_seed, 0} { assign_names(*this); }

  template <fixed_string Name>
  auto& encoder() {
    static_assert(modality_index<Name> < modality_count, "model::encoder<name>: no modality with this name");
    return std::get<modality_index<Name>>(encoders_);
  }
  template <fixed_string Name>
  auto& head() {
    static_assert(head_index<Name> < head_count, "model::head<name>: no head with this name");
    return std::get<head_index<Name>>(heads_);
  }
  fusion_type& fusion() { return fusion_; }
  dropout_rng& rng() { return rng_; }

  // Names: "<modality>.<encoder names>", "fusion.*", "heads.<head>.*".
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(encoders_).visit(join_name(prefix, std::string(modality_names[I])), f), ...);
    }(std::index_sequence_for<Mods...>{});
    fusion_.visit(join_name(prefix, "fusion"), f);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(heads_).visit(join_name(prefix, "heads." + std::string(head_names[I])), f), ...);
    }(std::index_sequence_for<Heads...>{});
  }

  model_output<T> operator()(const batch& b, bool training = false) {
    std::array<enc::encoded<T>, modality_count> parts;
    std::array<var<T>, modality_count> present;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (encode<I>(b, parts[I], present[I], training), ...);
    }(std::index_sequence_for<Mods...>{});
    model_output<T> out;
    out.fused = fusion_(std::span<const enc::encoded<T>>(parts), std::span<const var<T>>(present), rng_, training);
    out.names = head_names;
    out.predictions.reserve(head_count);
    std::apply([&](const auto&... h) { (out.predictions.push_back(h(out.fused, rng_, training)), ...); }, heads_);
    return out;
  }

  // One loss per head (an invalid var where the batch has no labels for that head).
  std::array<var<T>, head_count> losses(const model_output<T>& out, const batch& b) const {
    std::array<var<T>, head_count> l;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((l[I] = head_loss<I>(out, b)), ...);
    }(std::index_sequence_for<Heads...>{});
    return l;
  }
  // The sum of the heads' losses (equal weighting).
  var<T> loss(const model_output<T>& out, const batch& b) const {
    var<T> total;
    for (const var<T>& l : losses(out, b)) {
      if (!l.valid()) continue;
      total = total.valid() ? var<T>(total + l) : l;
    }
    if (!total.valid()) throw std::invalid_argument("model::loss: the batch has labels for none of the heads");
    return total;
  }

 private:
  template <std::size_t I>
  void encode(const batch& b, enc::encoded<T>& part, var<T>& present, bool training) {
    using E = std::tuple_element_t<I, std::tuple<typename Mods::encoder_type...>>;
    const std::string_view name = modality_names[I];
    const auto it = b.inputs.find(name);
    if (it == b.inputs.end()) {  // absent for every sample: zeros, flagged absent
      part.pooled = constant(hybrid::shape{b.size, E::width}, T(0));
      present = constant(hybrid::shape{b.size, 1}, T(0));
      return;
    }
    const auto* in = std::get_if<typename E::input_type>(&it->second.input);
    if (!in) throw std::invalid_argument("model: modality '" + std::string(name) + "' was given the wrong kind of input");
    part = std::get<I>(encoders_)(*in, rng_, training);
    if (part.pooled.shape() != hybrid::shape{b.size, E::width})
      throw shape_error("model", "encoder '" + std::string(name) + "' output", part.pooled.shape(), "expected",
                        hybrid::shape{b.size, E::width});
    const auto& mask = it->second.present;
    if (!mask.empty()) {
      if (static_cast<index_t>(mask.size()) != b.size)
        throw shape_error("model: modality '" + std::string(name) + "' has " + std::to_string(mask.size()) +
                          " presence flags for a batch of " + std::to_string(b.size));
      tensor<T> col({b.size, 1});
      for (index_t i = 0; i < b.size; ++i) col[i] = mask[static_cast<std::size_t>(i)] ? T(1) : T(0);
      present = constant(col);
    }
  }
  template <std::size_t I>
  var<T> head_loss(const model_output<T>& out, const batch& b) const {
    const auto it = b.labels.find(head_names[I]);
    if (it == b.labels.end()) return {};
    return std::get<I>(heads_).loss(out.predictions[I], it->second);
  }

  std::tuple<typename Mods::encoder_type...> encoders_;
  fusion_type fusion_;
  std::tuple<typename Heads::template op<T, fused_width>...> heads_;
  dropout_rng rng_{0x5eed, 0};
};

}  // namespace hybrid
