// Training guards: a step whose loss or gradient is not finite never reaches the weights. It is skipped
// and counted, and N such steps in a row stop training with an error naming the step, loss and parameter.
#pragma once
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "hybrid/autodiff/parameter.hpp"
#include "hybrid/autodiff/var.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/optim/optimizer.hpp"

namespace hybrid::train {

struct guard_options {
  // The max_consecutive_skips-th non-finite step in a row throws non_finite_error (must be >= 1). One
  // overflow now and then is skipped silently; a run of them means the model diverged, and skipping on
  // would only burn the remaining budget.
  index_t max_consecutive_skips = 10;
};

// The first non-finite gradient element, in optimizer order (trainable parameters only).
struct non_finite_gradient {
  std::string parameter;  // its name, or "#<position among the optimizer's parameters>" when unnamed
  index_t index = 0;      // flat element index
  double value = 0;       // inf, -inf or nan
};

// Thrown when a run of non-finite steps stops training. what() names the step, its loss and the first
// non-finite gradient; the same facts are available as fields.
class non_finite_error : public std::runtime_error {
 public:
  non_finite_error(const std::string& message, index_t step, double loss, std::optional<non_finite_gradient> g)
      : std::runtime_error(message), step_(step), loss_(loss), gradient_(std::move(g)) {}
  index_t step() const { return step_; }
  double loss() const { return loss_; }
  // Empty when every gradient was finite (only the loss was not).
  const std::optional<non_finite_gradient>& gradient() const { return gradient_; }

 private:
  index_t step_;
  double loss_;
  std::optional<non_finite_gradient> gradient_;
};

// Scans the gradients of the trainable parameters; returns the first non-finite element, if any. The
// scan runs over the optimizers' fixed slices in parallel; which element is "first" does not depend on
// the thread count.
template <class Exec = exec::default_policy, class T>
std::optional<non_finite_gradient> first_non_finite_gradient(const std::vector<parameter<T>*>& params) {
  std::vector<unsigned char> bad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const parameter<T>& p = *params[i];
    if (!p.trainable()) continue;
    const index_t n = p.numel();
    const T* g = p.grad().data();
    bad.assign(static_cast<std::size_t>((n + optim::detail::update_slice - 1) / optim::detail::update_slice), 0);
    optim::detail::for_each_slice<Exec>(n, [&](index_t b, index_t len) {
      bad[static_cast<std::size_t>(b / optim::detail::update_slice)] = !optim::detail::array_of(g, b, len).allFinite();
    });
    for (std::size_t s = 0; s < bad.size(); ++s) {
      if (!bad[s]) continue;
      const index_t begin = static_cast<index_t>(s) * optim::detail::update_slice;
      for (index_t k = begin; k < n; ++k)
        if (!std::isfinite(g[k])) {
          // Appended, not `"#" + to_string(i)`: GCC 12 warns falsely on that once inlined (bug 105329).
          std::string name = p.name();
          if (name.empty()) name.append("#").append(std::to_string(i));
          return non_finite_gradient{std::move(name), k, static_cast<double>(g[k])};
        }
    }
  }
  return std::nullopt;
}

// The guard's counters, saved with a training state so that a resumed run counts on from where it was.
struct guard_counters {
  index_t steps = 0;        // steps checked (updates made + steps skipped)
  index_t skipped = 0;      // steps skipped in all
  index_t consecutive = 0;  // skipped steps since the last update
};

// Wraps an optimizer so that a training loop's `opt.step()` becomes `guard.step(loss)`:
//
//   optim::adamw opt(params, {...});
//   train::step_guard guard(opt, {.max_consecutive_skips = 5});
//   for (...) { opt.zero_grad(); auto loss = ...; loss.backward(); guard.step(loss); }
//
// A skipped step leaves the weights, the optimizer's moments and its step count untouched (so bias
// correction and any schedule keyed on opt.step_count() carry on as if the step had not happened); the
// gradients are left as they are for the caller's zero_grad(). Clipping (optim::clip_grad_norm) may run
// before: it leaves non-finite gradients untouched, so the guard still sees them. The check reads every gradient
// once (as clip_grad_norm does), a small part of a step.
template <class T, class Exec = exec::default_policy>
class step_guard {
 public:
  explicit step_guard(optim::optimizer<T>& opt, guard_options o = {}) : opt_(&opt), options_(o) {
    if (o.max_consecutive_skips < 1)
      throw std::invalid_argument("step_guard: max_consecutive_skips must be >= 1, got " +
                                  std::to_string(o.max_consecutive_skips));
  }

  // opt.step() when the loss and every trainable gradient are finite (returns true). Otherwise the step
  // is skipped and counted (returns false), or, if it is the max_consecutive_skips-th skip in a row,
  // non_finite_error is thrown.
  bool step(double loss) {
    if (!check(loss)) return false;
    opt_->step();
    return true;
  }
  bool step(const var<T>& loss) { return step(static_cast<double>(loss.item())); }

  // The check without the update, for loops that update by other means: true when the loss and the
  // gradients are finite; counts and throws exactly as step() does.
  bool check(double loss) {
    const index_t step = c_.steps++;
    std::optional<non_finite_gradient> g = first_non_finite_gradient<Exec>(opt_->parameters());
    if (std::isfinite(loss) && !g) {
      c_.consecutive = 0;
      return true;
    }
    ++c_.skipped;
    if (++c_.consecutive >= options_.max_consecutive_skips) throw stop(step, loss, std::move(g));
    return false;
  }
  bool check(const var<T>& loss) { return check(static_cast<double>(loss.item())); }

  index_t steps() const { return c_.steps; }
  index_t skipped() const { return c_.skipped; }
  index_t consecutive_skips() const { return c_.consecutive; }
  const guard_options& options() const { return options_; }
  optim::optimizer<T>& optimizer() { return *opt_; }
  // The counters by reference: training_state saves and restores them.
  guard_counters& counters() { return c_; }
  const guard_counters& counters() const { return c_; }

 private:
  non_finite_error stop(index_t step, double loss, std::optional<non_finite_gradient> g) const {
    std::ostringstream m;
    m.precision(std::numeric_limits<double>::max_digits10);
    m << "training stopped at step " << step << ": " << c_.consecutive
      << " consecutive steps with a non-finite loss or gradient (steps " << step - c_.consecutive + 1 << '-' << step
      << ", max_consecutive_skips = " << options_.max_consecutive_skips << "; " << c_.skipped
      << " skipped in all). Step " << step << ": loss = " << loss << "; ";
    if (g)
      m << "first non-finite gradient: parameter '" << g->parameter << "' element " << g->index << " = " << g->value;
    else
      m << "every gradient finite";
    return non_finite_error(m.str(), step, loss, std::move(g));
  }

  optim::optimizer<T>* opt_;
  guard_options options_;
  guard_counters c_;
};

}  // namespace hybrid::train
