// Learning-rate schedules: a multiplier of each group's base lr as a function of the step, as Hugging
// Face transformers' get_{constant,linear,cosine}_schedule_with_warmup (LambdaLR lambdas).
#pragma once
#include <algorithm>
#include <cmath>
#include <numbers>

#include "hybrid/core/shape.hpp"

namespace hybrid::optim {

// A plain value, chosen at run time. Use: opt.scale_lr(sched(step)); opt.step(); with step counting
// the updates already made (0 for the first). As in transformers, the first update of a warmup
// schedule therefore has lr 0.
struct lr_schedule {
  enum class kind { constant, constant_with_warmup, linear, cosine };
  kind type = kind::constant;
  index_t warmup = 0, total = 0;
  double cycles = 0.5;  // cosine: 0.5 goes from 1 down to 0 once

  double operator()(index_t step) const {
    if (type == kind::constant) return 1;
    if (step < warmup) return double(step) / double(std::max<index_t>(1, warmup));
    if (type == kind::constant_with_warmup) return 1;
    const double span = double(std::max<index_t>(1, total - warmup));
    if (type == kind::linear) return std::max(0.0, double(total - step) / span);
    const double progress = double(step - warmup) / span;
    return std::max(0.0, 0.5 * (1 + std::cos(std::numbers::pi * cycles * 2 * progress)));
  }
};

inline lr_schedule constant_schedule() { return {}; }
inline lr_schedule constant_schedule_with_warmup(index_t warmup) {
  return {.type = lr_schedule::kind::constant_with_warmup, .warmup = warmup};
}
// Linear warmup from 0 to 1 over `warmup` steps, then linear decay to 0 at `total` steps.
inline lr_schedule linear_schedule_with_warmup(index_t warmup, index_t total) {
  return {.type = lr_schedule::kind::linear, .warmup = warmup, .total = total};
}
// Linear warmup, then a cosine from 1 to 0 at `total` steps (for cycles = 0.5).
inline lr_schedule cosine_schedule_with_warmup(index_t warmup, index_t total, double cycles = 0.5) {
  return {.type = lr_schedule::kind::cosine, .warmup = warmup, .total = total, .cycles = cycles};
}

}  // namespace hybrid::optim
