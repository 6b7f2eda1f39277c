// Late fusion by concatenation of the modalities' pooled vectors (absent modalities are zeros);
// also sum and mean, which need equal widths (checked at compile time).
#pragma once
#include <vector>

#include "hybrid/fuse/fusion.hpp"
#include "hybrid/ops/shape_ops.hpp"

namespace hybrid::fuse {

struct concat {
  template <class T, index_t... Widths>
  class op {
   public:
    using value_type = T;
    static constexpr index_t width = (Widths + ... + 0);
    template <class F>
    void visit(const std::string&, F&&) {}
    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      std::vector<var<T>> pieces;
      pieces.reserve(parts.size());
      for (std::size_t i = 0; i < parts.size(); ++i) pieces.push_back(mask_absent(parts[i].pooled, present[i]));
      return pieces.size() == 1 ? pieces.front() : hybrid::concat(pieces, -1);
    }
  };
};

namespace detail {
template <class T>
var<T> sum_present(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present) {
  var<T> total = mask_absent(parts[0].pooled, present[0]);
  for (std::size_t i = 1; i < parts.size(); ++i) total = total + mask_absent(parts[i].pooled, present[i]);
  return total;
}
}  // namespace detail

namespace detail {
// The sum of the pooled vectors present, or (Average) their mean over the modalities present for each
// sample (a sample with none present gives zeros). Every encoder width must equal Width.
template <index_t Width, bool Average>
struct pooled_sum {
  template <class T, index_t... Widths>
  class op {
    static_assert((width_check<Width, Widths>::ok && ...));

   public:
    using value_type = T;
    static constexpr index_t width = Width;
    template <class F>
    void visit(const std::string&, F&&) {}
    var<T> operator()(std::span<const enc::encoded<T>> parts, std::span<const var<T>> present, dropout_rng&,
                      bool) const {
      if constexpr (!Average) {
        return sum_present(parts, present);
      } else {
        const index_t B = parts[0].pooled.dim(0);
        var<T> count = make_result<T>({B, 1}, false);
        for (index_t b = 0; b < B; ++b) {
          T n = 0;
          for (const auto& p : present) n += presence(p, b);
          count.data()[b] = n > 0 ? T(1) / n : T(0);
        }
        return sum_present(parts, present) * count;
      }
    }
  };
};
}  // namespace detail

// Elementwise sum of the pooled vectors; every encoder width must equal Width.
template <index_t Width>
using sum = detail::pooled_sum<Width, false>;
// Mean over the modalities present for each sample (a sample with none present gives zeros).
template <index_t Width>
using mean = detail::pooled_sum<Width, true>;

}  // namespace hybrid::fuse
