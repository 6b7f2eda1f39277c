// The one generic gradient checker: central finite differences in double against the tape's
// gradients, for any function of parameters (an op, a layer, an encoder, a whole model).
#pragma once
#include <cmath>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hybrid/autodiff/parameter.hpp"

namespace hybrid {

struct gradient_check_options {
  double eps = 1e-6;
  double rtol = 1e-6;
  double atol = 1e-8;
  unsigned seed = 1234;
};

struct gradient_check_result {
  bool ok = true;
  bool outputs_finite = true;  // false: the op left a poisoned (NaN) element unwritten
  double max_abs_error = 0, max_rel_error = 0;
  std::size_t checked = 0;
  std::string worst;  // "param[index]: analytic vs numeric"
  std::string report() const {
    std::ostringstream s;
    s << (ok ? "ok" : "FAILED") << ", " << checked << " derivatives, max abs err " << max_abs_error << ", max rel err "
      << max_rel_error << (outputs_finite ? "" : ", output has non-finite values") << (worst.empty() ? "" : ", worst: ") << worst;
    return s.str();
  }
};

template <class T>
void fill_uniform(tensor<T>& t, std::mt19937& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> d(lo, hi);
  for (T& v : t) v = static_cast<T>(d(rng));
}

// f() builds the output from `params` (calling use() on them). The scalar checked is
// L = sum(w * f()) with fixed random weights w, so every output element is exercised.
template <class F>
gradient_check_result check_gradients(F&& f, const std::vector<parameter<double>*>& params,
                                      gradient_check_options opt = {}) {
  gradient_check_result res;
  tape& tp = tape::current();
  tp.reset();
  for (auto* p : params) p->zero_grad();

  // Analytic pass, with fresh buffers poisoned so an unwritten output element shows up as NaN: outputs in
  // forward, and in backward the adjoints a callback promised to overwrite whole (tape::adjoint_to_overwrite).
  std::vector<double> weights;
  {
    tp.set_poisoning(true);
    var<double> out = f();
    std::mt19937 rng(opt.seed);
    std::uniform_real_distribution<double> d(0.5, 1.5);
    weights.resize(static_cast<std::size_t>(out.numel()));
    for (auto& w : weights) w = d(rng) * (rng() % 2 ? 1 : -1);
    for (double v : out.values())
      if (!std::isfinite(v)) res.outputs_finite = false;
    if (out.requires_grad()) {
      for (index_t i = 0; i < out.numel(); ++i) out.grad_data()[i] = weights[static_cast<std::size_t>(i)];
      tp.run_backward();
    }
    tp.set_poisoning(false);
  }
  auto loss = [&] {
    no_grad ng;
    tape_scope scope;
    var<double> out = f();
    double l = 0;
    for (index_t i = 0; i < out.numel(); ++i) l += weights[static_cast<std::size_t>(i)] * out[i];
    return l;
  };
  for (auto* p : params) {
    if (!p->trainable()) continue;
    for (index_t i = 0; i < p->numel(); ++i) {
      double& x = p->value()[i];
      const double saved = x;
      x = saved + opt.eps;
      const double up = loss();
      x = saved - opt.eps;
      const double down = loss();
      x = saved;
      const double numeric = (up - down) / (2 * opt.eps);
      const double analytic = p->grad()[i];
      const double err = std::abs(numeric - analytic);
      const double scale = std::max(std::abs(numeric), std::abs(analytic));
      const double rel = scale > 0 ? err / scale : 0;
      ++res.checked;
      const bool bad = !(err <= opt.atol + opt.rtol * scale) || !std::isfinite(analytic);
      // Report the first failure, or while all pass the largest error.
      if ((bad && res.ok) || (res.ok && err >= res.max_abs_error)) {
        std::ostringstream s;
        s << p->name() << "[" << i << "]: analytic " << analytic << " vs numeric " << numeric;
        res.worst = s.str();
      }
      if (bad) res.ok = false;
      res.max_abs_error = std::max(res.max_abs_error, err);
      res.max_rel_error = std::max(res.max_rel_error, rel);
    }
  }
  if (!res.outputs_finite) res.ok = false;
  tp.reset();
  return res;
}

}  // namespace hybrid
