// Shared checks for the fusion operators' tests: inputs as parameters (so the gradient checker covers
// d fused / d inputs too), presence patterns, absent-sample invariance and every subset of modalities.
#pragma once
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/fuse/fusion.hpp>
#include <random>
#include <vector>

namespace fusion_testing {
using namespace hybrid;

// M modalities' inputs for a batch: pooled [B, W_m] and, where seq_len[m] > 0, a sequence [B, L_m, W_m];
// presence per sample (empty = all present).
template <class T>
struct inputs {
  std::vector<parameter<T>> pooled, sequence;
  std::vector<std::vector<std::uint8_t>> present;

  inputs(index_t batch, std::vector<index_t> widths, std::vector<index_t> seq_len = {}, unsigned seed = 1) {
    std::mt19937 rng(seed);
    seq_len.resize(widths.size(), 0);
    for (std::size_t m = 0; m < widths.size(); ++m) {
      pooled.emplace_back(fuse::modality_name("", "x", m), hybrid::shape{batch, widths[m]});
      fill_uniform(pooled.back().value(), rng);
      sequence.emplace_back(fuse::modality_name("", "s", m), hybrid::shape{batch, seq_len[m], widths[m]});
      fill_uniform(sequence.back().value(), rng);
    }
    present.resize(widths.size());
  }
  index_t batch() const { return pooled[0].shape()[0]; }

  // The parts and presence columns as the model hands them to a fusion operator (on the current tape).
  std::vector<enc::encoded<T>> parts() const {
    std::vector<enc::encoded<T>> out(pooled.size());
    for (std::size_t m = 0; m < pooled.size(); ++m) {
      out[m].pooled = pooled[m].use();
      if (sequence[m].shape()[1] > 0) out[m].sequence = sequence[m].use();
    }
    return out;
  }
  std::vector<var<T>> presence() const {
    std::vector<var<T>> out(present.size());
    for (std::size_t m = 0; m < present.size(); ++m) {
      if (present[m].empty()) continue;
      tensor<T> col({batch(), 1});
      for (index_t b = 0; b < batch(); ++b) col[b] = present[m][static_cast<std::size_t>(b)] ? T(1) : T(0);
      out[m] = constant(col);
    }
    return out;
  }
  std::vector<parameter<T>*> all() {
    std::vector<parameter<T>*> out;
    for (auto& p : pooled) out.push_back(&p);
    for (auto& s : sequence)
      if (s.numel() > 0) out.push_back(&s);
    return out;
  }
  // Every sample b has modality m iff bit m of b is set: all 2^M subsets, the empty one included.
  void all_subsets() {
    for (std::size_t m = 0; m < present.size(); ++m) {
      present[m].resize(static_cast<std::size_t>(batch()));
      for (index_t b = 0; b < batch(); ++b) present[m][static_cast<std::size_t>(b)] = (b >> m) & 1;
    }
  }
  // Overwrites every absent sample's inputs with other random numbers.
  void scramble_absent(unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> d(-3, 3);
    for (std::size_t m = 0; m < present.size(); ++m) {
      if (present[m].empty()) continue;
      for (index_t b = 0; b < batch(); ++b) {
        if (present[m][static_cast<std::size_t>(b)]) continue;
        auto& x = pooled[m].value();
        for (index_t c = 0; c < x.dim(1); ++c) x(b, c) = static_cast<T>(d(rng));
        auto& s = sequence[m].value();
        const index_t row = s.dim(1) * s.dim(2);
        for (index_t i = 0; i < row; ++i) s[b * row + i] = static_cast<T>(d(rng));
      }
    }
  }
};

template <class Op, class T>
var<T> run(const Op& op, const inputs<T>& in, bool training = false, std::uint64_t seed = 3) {
  const auto parts = in.parts();
  const auto present = in.presence();
  dropout_rng rng{seed, 0};
  return op(std::span<const enc::encoded<T>>(parts), std::span<const var<T>>(present), rng, training);
}

// The generic checker on op's parameters and the inputs together.
template <class Op>
void check_fusion_gradients(Op& op, inputs<double>& in, bool training = false, gradient_check_options opt = {
                                                                                   .eps = 1e-6, .rtol = 1e-5, .atol = 1e-8}) {
  auto ps = parameters_of(op);
  for (auto* p : in.all()) ps.push_back(p);
  auto r = check_gradients([&] { return run(op, in, training); }, ps, opt);
  INFO(r.report());
  CHECK(r.ok);
  CHECK(r.checked > 0);
}

// Every subset of modalities gives a finite [B, width] output, and absent samples' inputs do not matter.
template <class Op, class T>
void check_subsets_and_invariance(const Op& op, inputs<T>& in) {
  in.all_subsets();
  tape::current().reset();
  no_grad ng;
  const tensor<T> a = run(op, in).value();
  CHECK(a.shape() == hybrid::shape{in.batch(), Op::width});
  for (T v : a) CHECK(std::isfinite(v));
  in.scramble_absent(99);
  const tensor<T> b = run(op, in).value();
  for (index_t i = 0; i < a.numel(); ++i) CHECK(a[i] == b[i]);
}

// Parameter names are "<prefix>.<...>" and unique.
template <class Op>
std::vector<std::string> names_of(Op& op) {
  std::vector<std::string> names;
  op.visit("fusion", [&](const std::string& n, auto&) { names.push_back(n); });
  return names;
}

}  // namespace fusion_testing
