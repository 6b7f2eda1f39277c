// The encoder contract, written once. An encoder turns one modality's batch into a pooled vector
// [B, width] (and, for sequence encoders, the sequence [B, L, width]) for the fusion operator.
#pragma once
#include <concepts>

#include "hybrid/layers/module.hpp"
#include "hybrid/ops/dropout.hpp"

namespace hybrid::enc {

template <class T>
struct encoded {
  var<T> sequence;  // [B, L, width] for sequence encoders; invalid (`!valid()`) for vector encoders
  var<T> pooled;    // [B, width]
};

// Dense per-sample features: images [B, C, H, W], waveforms [B, samples], tables [B, features].
struct dense_input {
  tensor<float> values;
};

// An encoder is a module with a compile-time output width:
//   using input_type;  static constexpr index_t width;  static constexpr bool sequence_output;
//   encoded<T> operator()(const input_type&, dropout_rng&, bool training) const;
template <class E>
concept encoder = module<E> && requires(const E& e, const typename E::input_type& in, dropout_rng& rng) {
  { E::width } -> std::convertible_to<index_t>;
  { E::sequence_output } -> std::convertible_to<bool>;
  { e(in, rng, true) } -> std::same_as<encoded<typename E::value_type>>;
};

}  // namespace hybrid::enc
