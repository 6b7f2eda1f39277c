// model<encoders<modality<"name", Encoder>...>, Fusion, heads<Head...>, Options...>: a multimodal, multi-task
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
#include "hybrid/mtl/task_gradients.hpp"
#include "hybrid/mtl/tower.hpp"
#include "hybrid/mtl/weighting.hpp"

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

// Predictions per head, in the order of heads<...>, plus what multi-task training needs.
template <class T>
struct model_output {
  var<T> fused;                        // the fusion's output [B, fused_width]
  std::vector<var<T>> predictions;     // per head; invalid when a modality the head reads is not in the batch
  std::span<const std::string_view> names;
  std::vector<enc::encoded<T>> modalities;  // per modality (encoders<...> order); absent: zero pooled, no sequence
  std::vector<var<T>> present;         // per modality: [B, 1] presence column; invalid = every sample has it
  std::vector<var<T>> task_inputs;     // per head: what the tower gave it (hard sharing: the fused vector)
  // The shared representation seen by the heads: the fused vector and every modality output a head
  // reads directly (distinct values). Everything recorded after `shared_end` is task-specific
  // (tower and heads): representation-level gradient methods backpropagate K times through that part only.
  std::vector<var<T>> boundary;
  tape::mark shared_end{};

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
// The option of a kind (weighting or tower) among model<...>'s trailing options, or Default.
template <class Kind, class Default, class... Options>
struct option_of {
  using type = Default;
};
template <class Kind, class Default, class First, class... Rest>
struct option_of<Kind, Default, First, Rest...> {
  using type = std::conditional_t<std::is_same_v<typename First::option_kind, Kind>, First,
                                  typename option_of<Kind, Default, Rest...>::type>;
};
template <class O>
concept model_option = requires { typename O::option_kind; } &&
                       (std::is_same_v<typename O::option_kind, mtl::weighting_option> ||
                        std::is_same_v<typename O::option_kind, mtl::tower_option>);
template <class Kind, class... Options>
constexpr std::size_t count_options() {
  return (std::size_t{0} + ... + (std::is_same_v<typename Options::option_kind, Kind> ? 1 : 0));
}
}  // namespace detail

template <class Encoders, class Fusion, class Heads, class... Options>
class model;

template <class... Mods, class Fusion, class... Heads, class... Options>
class model<encoders<Mods...>, Fusion, heads<Heads...>, Options...> {
  using first_encoder = std::tuple_element_t<0, std::tuple<typename Mods::encoder_type...>>;
  static_assert((detail::model_option<Options> && ...),
                "model<..., Options>: an option is neither a loss weighting (mtl/weighting.hpp) nor a tower (mtl/tower.hpp)");
  static_assert(detail::count_options<mtl::weighting_option, Options...>() <= 1, "model: at most one loss weighting");
  static_assert(detail::count_options<mtl::tower_option, Options...>() <= 1, "model: at most one tower");

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
  static constexpr std::array<index_t, modality_count> modality_widths{Mods::encoder_type::width...};
  static constexpr std::array<bool, modality_count> modality_sequences{Mods::encoder_type::sequence_output...};

  using weighting_recipe = typename detail::option_of<mtl::weighting_option, mtl::equal_weighting, Options...>::type;
  using tower_recipe = typename detail::option_of<mtl::tower_option, mtl::hard_sharing, Options...>::type;
  using weighting_type = typename weighting_recipe::template op<T, head_count>;
  using tower_type = typename tower_recipe::template op<T, fused_width, head_count>;
  static_assert(mtl::weighting_op<weighting_type, T, head_count>, "model: the weighting option breaks the contract");
  static_assert(mtl::tower_op<tower_type, T, head_count>, "model: the tower option breaks the contract");
  static constexpr index_t task_width = tower_type::width;

  template <fixed_string Name>
  static constexpr std::size_t modality_index = detail::index_of(Name.view(), modality_names);
  template <fixed_string Name>
  static constexpr std::size_t head_index = detail::index_of(Name.view(), head_names);

 private:
  // A head reads its task's representation (width task_width) or the modality outputs it declares.
  template <class H, std::size_t J>
  static constexpr index_t source_width() {
    constexpr head::source s = head::sources_of<H>()[J];
    constexpr std::size_t m = detail::index_of(s.modality, modality_names);
    static_assert(m < modality_count, "model: a head reads a modality the model does not have (see its `sources`)");
    static_assert(s.kind != head::input::sequence || modality_sequences[m < modality_count ? m : 0],
                  "model: a head reads the sequence of a modality whose encoder has no sequence output");
    return modality_widths[m < modality_count ? m : 0];
  }
  template <class H, class Seq = std::make_index_sequence<head::sources_of<H>().size()>>
  struct head_op_of;
  template <class H, std::size_t... J>
  struct head_op_of<H, std::index_sequence<J...>> {
    using type = typename H::template op<T, source_width<H, J>()...>;
  };
  template <class H>
  struct head_op_of<H, std::index_sequence<>> {
    using type = typename H::template op<T, task_width>;
  };

 public:
  model() : tower_(std::span<const std::string_view>(head_names)) { assign_names(*this); }
  explicit model(std::uint64_t dropout_seed) : model() { rng_ = dropout_rng{dropout_seed, 0}; }

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
  tower_type& tower() { return tower_; }
  weighting_type& weighting() { return weighting_; }
  const weighting_type& weighting() const { return weighting_; }
  dropout_rng& rng() { return rng_; }

  // Names: "<modality>.<encoder names>", "fusion.*", "tower.*", "heads.<head>.*", "mtl.*" (weighting).
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    visit_shared(prefix, f);
    tower_.visit(join_name(prefix, "tower"), f);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(heads_).visit(join_name(prefix, "heads." + std::string(head_names[I])), f), ...);
    }(std::index_sequence_for<Heads...>{});
    weighting_.visit(join_name(prefix, "mtl"), f);
  }
  // The sub-modules, named as in visit: "<modality>", "fusion", "tower", "heads.<head>", "mtl". With it
  // layers::walk_modules reaches every layer of a composed model, so layers::apply_lora adapts, say, the
  // text encoder's attention ("query", "value") and modules_to_save keeps a head trainable ("heads.topic").
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(join_name(prefix, std::string(modality_names[I])), std::get<I>(encoders_)), ...);
    }(std::index_sequence_for<Mods...>{});
    f(join_name(prefix, "fusion"), fusion_);
    f(join_name(prefix, "tower"), tower_);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(join_name(prefix, "heads." + std::string(head_names[I])), std::get<I>(heads_)), ...);
    }(std::index_sequence_for<Heads...>{});
    f(join_name(prefix, "mtl"), weighting_);
  }
  // The parameters every task trains: encoders, fusion and the tower's shared part (MMoE's experts).
  // Gradient surgery combines the tasks' gradients on exactly these.
  template <class F>
  void visit_shared(const std::string& prefix, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(encoders_).visit(join_name(prefix, std::string(modality_names[I])), f), ...);
    }(std::index_sequence_for<Mods...>{});
    // Per-modality fusion parameters are named after the modalities (fuse::modality_name).
    if constexpr (requires { fusion_.visit(prefix, f, fuse::modality_labels(modality_names)); })
      fusion_.visit(join_name(prefix, "fusion"), f, fuse::modality_labels(modality_names));
    else
      fusion_.visit(join_name(prefix, "fusion"), f);
    tower_.visit_shared(join_name(prefix, "tower"), f);
  }

  model_output<T> operator()(const batch& b, bool training = false) {
    model_output<T> out;
    out.modalities.resize(modality_count);
    out.present.resize(modality_count);
    std::array<bool, modality_count> supplied{};
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((supplied[I] = encode<I>(b, out.modalities[I], out.present[I], training)), ...);
    }(std::index_sequence_for<Mods...>{});
    out.fused = fusion_(std::span<const enc::encoded<T>>(out.modalities), std::span<const var<T>>(out.present), rng_,
                        training);
    out.names = head_names;
    add_boundary(out, out.fused);
    out.shared_end = tape::current().position();
    const auto inputs = tower_(out.fused, rng_, training);
    out.task_inputs.assign(inputs.begin(), inputs.end());
    out.predictions.resize(head_count);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((out.predictions[I] = run_head<I>(out, supplied, training)), ...);
    }(std::index_sequence_for<Heads...>{});
    return out;
  }

  // One raw loss per head (an invalid var where the batch has no labels for that head, or labels that
  // mark no sample: see head::labelled).
  std::array<var<T>, head_count> losses(const model_output<T>& out, const batch& b) const {
    std::array<var<T>, head_count> l;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((l[I] = head_loss<I>(out, b)), ...);
    }(std::index_sequence_for<Heads...>{});
    return l;
  }
  // The weighting's per-task terms (their sum is the training loss); updates the weighting's state.
  std::array<var<T>, head_count> terms(const model_output<T>& out, const std::array<var<T>, head_count>& losses) {
    mtl::weighting_context<T> ctx;
    ctx.gradient_norms = [this, &out](std::span<const var<T>> seeds) { return gradient_norms(out, seeds); };
    return weighting_.terms(losses, ctx);
  }
  // The weighted multi-task loss (equal weighting: the sum of the heads' losses).
  var<T> loss(const model_output<T>& out, const batch& b) {
    var<T> total;
    for (const var<T>& t : terms(out, losses(out, b))) {
      if (!t.valid()) continue;
      total = total.valid() ? var<T>(total + t) : t;
    }
    if (!total.valid()) throw std::invalid_argument("model::loss: the batch has labels for none of the heads");
    return total;
  }
  // The weighting's epoch hook (DWA); nothing for the others.
  void end_epoch() {
    if constexpr (requires { weighting_.end_epoch(); }) weighting_.end_epoch();
  }

 private:
  template <std::size_t I>
  bool encode(const batch& b, enc::encoded<T>& part, var<T>& present, bool training) {
    using E = std::tuple_element_t<I, std::tuple<typename Mods::encoder_type...>>;
    const std::string_view name = modality_names[I];
    const auto it = b.inputs.find(name);
    if (it == b.inputs.end()) {  // absent for every sample: zeros, flagged absent
      part.pooled = constant(hybrid::shape{b.size, E::width}, T(0));
      present = constant(hybrid::shape{b.size, 1}, T(0));
      return false;
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
    return true;
  }

  static void add_boundary(model_output<T>& out, const var<T>& v) {
    if (!v.valid() || !v.requires_grad()) return;
    for (const var<T>& u : out.boundary)
      if (u.get() == v.get()) return;
    out.boundary.push_back(v);
  }

  template <std::size_t I>
  var<T> run_head(model_output<T>& out, const std::array<bool, modality_count>& supplied, bool training) {
    using H = std::tuple_element_t<I, std::tuple<Heads...>>;
    const auto& h = std::get<I>(heads_);
    constexpr auto sources = head::sources_of<H>();
    if constexpr (sources.size() == 0) {
      return h(out.task_inputs[I], rng_, training);
    } else {
      std::array<var<T>, sources.size()> xs;
      for (std::size_t j = 0; j < sources.size(); ++j) {
        const std::size_t m = detail::index_of(sources[j].modality, modality_names);
        if (!supplied[m]) return {};  // the modality is not in this batch: no prediction, no loss
        const auto& part = out.modalities[m];
        xs[j] = sources[j].kind == head::input::sequence ? part.sequence : part.pooled;
        if (!xs[j].valid())
          throw std::logic_error("model: head '" + std::string(head_names[I]) + "' reads the sequence of modality '" +
                                 std::string(modality_names[m]) + "', whose encoder gave none");
        add_boundary(out, xs[j]);
      }
      if constexpr (head::ties_word_embeddings<H>()) {
        static_assert(sources.size() == 1, "model: a head tied to word embeddings reads one sequence");
        constexpr std::size_t m = detail::index_of(sources[0].modality, modality_names);
        auto& encoder = std::get<(m < modality_count ? m : 0)>(encoders_);
        static_assert(requires { encoder.word_embeddings().weight(); },
                      "model: this head ties its decoder to the word embeddings of its modality's encoder, which "
                      "has none (head::mlm with mlm_options{.tie_word_embeddings = false} has a decoder of its own)");
        return h(xs[0], encoder.word_embeddings().weight().use(), rng_, training);
      } else if constexpr (sources.size() == 1) {
        return h(xs[0], rng_, training);
      } else {
        return h(std::span<const var<T>>(xs), rng_, training);
      }
    }
  }

  template <std::size_t I>
  var<T> head_loss(const model_output<T>& out, const batch& b) const {
    using H = std::tuple_element_t<I, std::tuple<Heads...>>;
    if (!out.predictions[I].valid()) return {};
    const auto it = b.labels.find(head_names[I]);
    const head::task_labels none{};
    if (it == b.labels.end() && !head::self_supervised<H>()) return {};
    const head::task_labels& y = it == b.labels.end() ? none : it->second;
    constexpr auto sources = head::sources_of<H>();
    if constexpr (sources.size() > 0) {
      // Samples where a modality the head reads is absent are left out of its loss.
      head::task_labels masked;
      bool any = false;
      for (const head::source& s : sources) {
        const auto& present = b.inputs.find(s.modality)->second.present;
        if (present.empty()) continue;
        if (!any) {
          masked = y;
          if (masked.weights.empty()) masked.weights.assign(static_cast<std::size_t>(b.size), 1.0f);
          any = true;
        }
        for (std::size_t i = 0; i < masked.weights.size() && i < present.size(); ++i)
          if (!present[i]) masked.weights[i] = 0;
      }
        if (any) return head::labelled(masked) ? std::get<I>(heads_).loss(out.predictions[I], masked) : var<T>();
    }
    return head::labelled(y) ? std::get<I>(heads_).loss(out.predictions[I], y) : var<T>();
  }

  // |d seed_k / d boundary| for each seed: one pass per task through the tower and heads; their
  // parameters' gradients are restored afterwards, so the probe leaves no trace.
  std::vector<double> gradient_norms(const model_output<T>& out, std::span<const var<T>> seeds) {
    std::vector<parameter<T>*> above;
    const auto collect = [&](const std::string&, parameter<T>& p) { above.push_back(&p); };
    tower_.visit("", collect);
    std::apply([&](auto&... h) { (h.visit("", collect), ...); }, heads_);
    mtl::gradient_snapshot<T> saved(std::move(above));
    const auto g = mtl::representation_gradients<T>(out.shared_end, out.boundary, seeds);
    saved.restore();
    std::vector<double> norms(static_cast<std::size_t>(g.rows()));
    for (index_t k = 0; k < g.rows(); ++k) norms[static_cast<std::size_t>(k)] = double(g.row(k).norm());
    return norms;
  }

  std::tuple<typename Mods::encoder_type...> encoders_;
  fusion_type fusion_;
  tower_type tower_;
  std::tuple<typename head_op_of<Heads>::type...> heads_;
  weighting_type weighting_;
  dropout_rng rng_{0x5eed, 0};
};

}  // namespace hybrid
