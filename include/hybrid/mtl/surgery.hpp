// The gradient-surgery driver: per-task gradients of the shared part from ONE forward and K retained
// backward passes, combined by a method (PCGrad, MGDA, CAGrad) and written into the shared parameters.
#pragma once
#include <stdexcept>
#include <vector>

#include "hybrid/model.hpp"
#include "hybrid/mtl/task_gradients.hpp"

namespace hybrid::mtl {

// parameters: each task's gradient of every shared parameter (encoders, fusion, tower's shared part);
//   K full backward passes; exact.
// representation: each task's gradient of the shared representation (model_output::boundary), K passes
//   through the tower and heads only, then one full pass from the combined gradient (MGDA-UB, Sener &
//   Koltun's upper bound, and its analogue for the other methods): cheap, the encoders are traversed once.
//   A tower's shared part (MMoE's experts) lies above the representation and gets the plain sum.
enum class gradient_level { parameters, representation };

struct surgery_report {
  std::vector<std::size_t> tasks;  // the heads with a loss in this batch (heads<...> indices)
  std::vector<double> losses;      // their raw losses
  Eigen::VectorXd weights;         // the combination: shared gradient = sum_i weights[i] g_{tasks[i]}
};

// What the driver needs of a model (model<> and any_model have it).
template <class M, class T>
concept multitask_model = requires(M& m, const model_output<T>& out, const batch& b, const parameter_visitor<T>& f) {
  m.losses(out, b);
  m.visit_shared(std::string(), f);
};

// Replaces `model.loss(out, b).backward()`: the task-specific parameters (heads, gates, the weighting's
// own) get their own task's gradient of its weighted term; the shared ones get the method's combination
// of the tasks' gradients, ADDED to what they hold (gradient accumulation works as with backward()).
template <gradient_method Method>
class surgery {
 public:
  explicit surgery(Method method = {}, gradient_level level = gradient_level::parameters)
      : method_(std::move(method)), level_(level) {}
  Method& method() { return method_; }
  gradient_level level() const { return level_; }

  template <class Model, class T>
    requires multitask_model<Model, T>
  surgery_report backward(Model& m, const model_output<T>& out, const batch& b) {
    const auto losses = m.losses(out, b);
    const auto terms = m.terms(out, losses);
    surgery_report rep;
    std::vector<var<T>> seeds;
    for (std::size_t k = 0; k < std::size(terms); ++k)
      if (terms[k].valid() && terms[k].requires_grad()) {
        seeds.push_back(terms[k]);
        rep.tasks.push_back(k);
        rep.losses.push_back(double(losses[k].item()));
      }
    if (seeds.empty()) throw std::invalid_argument("surgery: no task has a loss in this batch");

    if (level_ == gradient_level::representation) {
      const auto g = representation_gradients<T>(out.shared_end, out.boundary, seeds);
      backward_from_boundary<T>(out.boundary, combine(method_, g, &rep.weights));
      return rep;
    }
    std::vector<parameter<T>*> shared;
    m.visit_shared("", parameter_visitor<T>([&](const std::string&, parameter<T>& p) {
      if (p.trainable()) shared.push_back(&p);
    }));
    gradient_snapshot<T> before(shared);
    const auto g = parameter_gradients<T>(shared, seeds);
    finish_backward();
    const gradient_vector<T> d = combine(method_, g, &rep.weights);
    before.restore();
    index_t at = 0;
    for (auto* p : shared) {
      T* gp = p->grad().data();
      for (index_t i = 0; i < p->numel(); ++i) gp[i] += d[at + i];
      at += p->numel();
    }
    return rep;
  }

 private:
  Method method_;
  gradient_level level_;
};

}  // namespace hybrid::mtl
