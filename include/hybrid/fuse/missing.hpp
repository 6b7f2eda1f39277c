// Missing modalities as a first-class wrapper around any fusion operator: modality dropout in training
// (each sample keeps at least one modality) and a learned placeholder embedding for absent modalities.
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/layers/module.hpp"

namespace hybrid::fuse {

struct missing_options {
  double dropout = 0.0;     // in training, each present modality of each sample is dropped with this probability
  bool placeholder = true;  // absent modalities are replaced by a learned embedding instead of being masked
};

// Modality dropout on presence flags [B * M] (sample-major, 1 present / 0 absent): drops each present
// flag with probability p, then gives back to every sample that lost all its modalities one of them,
// chosen uniformly. Never makes an absent modality present. The draws are a pure function of one key
// from `rng` (counter-based, like ops/dropout), so a run replays exactly; p == 0 draws nothing.
inline std::vector<std::uint8_t> modality_dropout(std::span<const std::uint8_t> present, std::size_t modalities,
                                                  double p, dropout_rng& rng) {
  if (!(p >= 0 && p <= 1))
    throw std::invalid_argument("modality_dropout: p must be in [0, 1], got " + std::to_string(p));
  std::vector<std::uint8_t> keep(present.begin(), present.end());
  if (p == 0 || modalities == 0) return keep;
  if (present.size() % modalities != 0 || present.size() > 0xffffffffu)
    throw std::invalid_argument("modality_dropout: " + std::to_string(present.size()) + " flags for " +
                                std::to_string(modalities) + " modalities");
  const std::uint64_t key = rng.next_key();
  const auto lo = static_cast<std::uint32_t>(key), hi = static_cast<std::uint32_t>(key >> 32);
  const auto threshold = static_cast<std::uint32_t>(std::min(p * 4294967296.0, 4294967295.0));
  const auto draw = [&](std::uint32_t i, std::uint32_t salt) { return hybrid::detail::mix32(hybrid::detail::mix32(i + lo) ^ hi ^ salt); };
  const std::size_t batch = present.size() / modalities;
  for (std::size_t b = 0; b < batch; ++b) {
    std::uint8_t* row = keep.data() + b * modalities;
    std::uint32_t had = 0, left = 0;
    for (std::size_t m = 0; m < modalities; ++m) {
      if (!row[m]) continue;
      ++had;
      if (draw(static_cast<std::uint32_t>(b * modalities + m), 0) < threshold) row[m] = 0;
      else ++left;
    }
    if (had == 0 || left > 0) continue;
    std::uint32_t pick = draw(static_cast<std::uint32_t>(b), 0x5bd1e995u) % had;  // the pick-th present one
    for (std::size_t m = 0; m < modalities; ++m)
      if (present[b * modalities + m] && pick-- == 0) {
        row[m] = 1;
        break;
      }
  }
  return keep;
}

// with_missing<Fusion, missing_options{.dropout = p}>: wraps any fusion recipe (same width).
// (a) training with p > 0: modality_dropout on the presence flags, drawn from the model's dropout stream;
// (b) with placeholders, modality m of a sample that lacks it (absent in the batch or dropped) reads a
//     learned embedding e_m [W_m] instead, as its pooled vector and as every token of its sequence; the
//     wrapped fusion then sees every modality present, so even a sample with nothing gets a valid output.
//     Without placeholders, the wrapped fusion gets the updated presence and masks as it always does.
// At inference any subset of modalities (the empty one included) gives a valid output.
// Parameters: the wrapped fusion's, under the same prefix, then placeholder.<m> [W_m] (N(0, 0.02) at start).
template <class Fusion, missing_options Options = missing_options{}>
struct with_missing {
  static_assert(Options.dropout >= 0 && Options.dropout <= 1, "fuse::with_missing: dropout must be in [0, 1]");
  template <class T, index_t... Widths>
  class op {
    static constexpr std::size_t M = sizeof...(Widths);
    using inner_type = typename Fusion::template op<T, Widths...>;
    static_assert(fusion_op<inner_type, T>, "fuse::with_missing: the wrapped type is not a fusion recipe");

   public:
    using value_type = T;
    static constexpr index_t width = inner_type::width;

    op() : placeholder_{parameter<T>("placeholder", {Widths})...} {
      std::mt19937 rng(0x9155);
      for (auto& p : placeholder_) init_normal(p, rng, 0.02);
    }
    template <class F>
    void visit(const std::string& prefix, F&& f, modality_labels names = {}) {
      if constexpr (requires { inner_.visit(prefix, f, names); })
        inner_.visit(prefix, f, names);
      else
        inner_.visit(prefix, f);
      if constexpr (Options.placeholder)
        for (std::size_t m = 0; m < M; ++m) f(modality_name(prefix, "placeholder", m, names), placeholder_[m]);
    }
    inner_type& inner() { return inner_; }
    const inner_type& inner() const { return inner_; }

    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng& rng,
                      bool training) const {
      const index_t B = parts[0].pooled.dim(0);
      std::vector<std::uint8_t> flags(static_cast<std::size_t>(B) * M);
      for (index_t b = 0; b < B; ++b)
        for (std::size_t m = 0; m < M; ++m) flags[std::size_t(b) * M + m] = presence(present[m], b) != T(0);
      if (training) flags = modality_dropout(flags, M, Options.dropout, rng);

      std::array<var<T>, M> kept, absent;  // [B, 1] columns; invalid where every sample has the modality
      for (std::size_t m = 0; m < M; ++m) {
        bool all = true;
        for (index_t b = 0; b < B; ++b) all = all && flags[std::size_t(b) * M + m];
        if (all) continue;
        kept[m] = make_result<T>({B, 1}, false);
        absent[m] = make_result<T>({B, 1}, false);
        for (index_t b = 0; b < B; ++b) {
          kept[m].data()[b] = flags[std::size_t(b) * M + m] ? T(1) : T(0);
          absent[m].data()[b] = T(1) - kept[m].data()[b];
        }
      }
      if constexpr (!Options.placeholder) {
        return inner_(parts, std::span<const var<T>>(kept), rng, training);
      } else {
        std::array<enc::encoded<T>, M> filled;
        for (std::size_t m = 0; m < M; ++m) {
          filled[m] = parts[m];
          if (!kept[m].valid()) continue;
          filled[m].pooled = parts[m].pooled * kept[m] + placeholder_[m] * absent[m];
          if (!parts[m].sequence.valid()) continue;
          const var<T>& s = parts[m].sequence;
          const index_t L = s.dim(1), W = s.dim(2);
          const std::vector<var<T>> copies(static_cast<std::size_t>(L), placeholder_[m].use());
          const var<T> tiled = L == 1 ? copies[0] : hybrid::concat(copies, 0);  // [L * W]
          filled[m].sequence = reshape(var<T>(reshape(s, {B, L * W}) * kept[m] + tiled * absent[m]), {B, L, W});
        }
        const std::array<var<T>, M> everyone{};
        return inner_(std::span<const enc::encoded<T>>(filled), std::span<const var<T>>(everyone), rng, training);
      }
    }

   private:
    inner_type inner_;
    std::array<parameter<T>, M> placeholder_;
  };
};

}  // namespace hybrid::fuse
