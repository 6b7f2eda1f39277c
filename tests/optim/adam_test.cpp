// Adam and AdamW: PyTorch fixtures and a hand-written recurrence (L2 vs decoupled weight decay,
// AMSGrad, groups), exposed state, serial vs tbb, convergence on a linear regression, errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/schedule.hpp>

#include "fixtures/tiny_problem.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
template <class T>
std::unique_ptr<optim::optimizer<T>> make_adam(const torch_optim::adam_case& c, std::vector<optim::param_group<T>> g) {
  if (c.decoupled)
    return std::make_unique<optim::adamw<T>>(std::move(g), optim::adamw_options{c.lr, c.beta1, c.beta2, c.eps,
                                                                                 c.weight_decay, c.amsgrad});
  return std::make_unique<optim::adam<T>>(std::move(g), optim::adam_options{c.lr, c.beta1, c.beta2, c.eps,
                                                                            c.weight_decay, c.amsgrad});
}
}  // namespace

TEST_CASE("adam and adamw match PyTorch and a hand-written recurrence") {
  for (const auto& c : torch_optim::adam_cases) {
    CAPTURE(c.decoupled);
    CAPTURE(c.weight_decay);
    CAPTURE(c.amsgrad);
    // Reference: torch.optim.Adam / AdamW written out per element.
    std::vector<double> m(9), v(9), vmax(9);
    auto ref = reference_trace(c.lr, c.weight_decay, [&](int s, int i, double lr, double wd, double& p, double g) {
      const int t = s + 1;
      if (c.decoupled) p *= 1 - lr * wd;
      else g += wd * p;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g;
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g * g;
      vmax[i] = std::max(vmax[i], v[i]);
      const double bc1 = 1 - std::pow(c.beta1, t), bc2 = 1 - std::pow(c.beta2, t);
      p -= lr / bc1 * m[i] / (std::sqrt(c.amsgrad ? vmax[i] : v[i]) / std::sqrt(bc2) + c.eps);
    });
    tiny_problem<double> pd;
    auto opt = make_adam(c, pd.groups(c.lr));
    auto got = pd.run(*opt);
    for (int s = 0; s < torch_optim::steps; ++s)
      for (int i = 0; i < 9; ++i) {
        CHECK(got[s][i] == doctest::Approx(c.trace[s][i]).epsilon(1e-12));
        CHECK(ref[s][i] == doctest::Approx(c.trace[s][i]).epsilon(1e-12));
      }
    // State: exp_avg, exp_avg_sq (and max_exp_avg_sq) per parameter, and the step count.
    auto st = opt->state();
    CHECK(st.step == torch_optim::steps);
    const int slots = c.amsgrad ? 3 : 2;
    REQUIRE(st.tensors.size() == std::size_t(2 * slots));
    CHECK(st.tensors[0].name == "dense.weight.exp_avg");
    CHECK(st.tensors[1].name == "dense.weight.exp_avg_sq");
    CHECK(st.tensors[std::size_t(slots)].name == "dense.bias.exp_avg");
    for (int k = 0; k < slots; ++k)
      for (int i = 0; i < 9; ++i) {
        const auto& t = st.tensors[std::size_t(i < 6 ? k : slots + k)].value;
        CHECK(t[i < 6 ? i : i - 6] == doctest::Approx(c.state[k][i]).epsilon(1e-12));
      }
    // Float follows the double trajectory.
    tiny_problem<float> pf;
    auto optf = make_adam(c, pf.groups(c.lr));
    auto gotf = pf.run(*optf);
    for (int i = 0; i < 9; ++i) CHECK(gotf.back()[i] == doctest::Approx(c.trace[4][i]).epsilon(1e-5).scale(1));
  }
}

TEST_CASE("adamw defaults: PyTorch's weight decay 0.01; adam's is 0") {
  CHECK(optim::adamw_options{}.weight_decay == 0.01);
  CHECK(optim::adam_options{}.weight_decay == 0.0);
  // With a zero gradient Adam does nothing, AdamW still decays: p *= 1 - lr * wd.
  parameter<double> p("p", tensor<double>({2}, {1.0, -2.0}));
  optim::adamw opt(std::vector{&p}, {.lr = 0.1, .weight_decay = 0.5});
  opt.step();
  CHECK(p.value()[0] == doctest::Approx(0.95).epsilon(1e-15));
  CHECK(p.value()[1] == doctest::Approx(-1.9).epsilon(1e-15));
  optim::adam opt2(std::vector{&p}, {.lr = 0.1});
  opt2.step();
  CHECK(p.value()[0] == doctest::Approx(0.95).epsilon(1e-15));
}

TEST_CASE("adam: serial and tbb give identical bits on a large parameter") {
  std::mt19937 rng(5);
  parameter<float> a("a", {300, 257}), b("b", {300, 257});  // several update slices and a tail
  fill_uniform(a.value(), rng);
  b.value() = a.value().clone();
  optim::adamw<float, exec::tbb> oa(std::vector{&a}, {.lr = 1e-2, .amsgrad = true});
  optim::adamw<float, exec::serial> ob(std::vector{&b}, {.lr = 1e-2, .amsgrad = true});
  for (int s = 0; s < 3; ++s) {
    fill_uniform(a.grad(), rng);
    b.grad() = a.grad().clone();
    oa.step();
    ob.step();
  }
  CHECK(std::equal(a.value().begin(), a.value().end(), b.value().begin()));
}

TEST_CASE("adam and adamw fit a linear regression") {
  std::mt19937 rng(8);
  const int N = 64;
  tensor<double> X({N, 3}), y({N, 1});
  fill_uniform(X, rng);
  const double w_true[] = {1.5, -2.0, 0.5}, b_true = 0.3;
  for (int r = 0; r < N; ++r) y[r] = b_true + w_true[0] * X(r, 0) + w_true[1] * X(r, 1) + w_true[2] * X(r, 2);
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    parameter<double> w("linear.weight", {3, 1}), b("linear.bias", {1});
    std::unique_ptr<optim::optimizer<double>> opt;
    if (kind == 0) opt = std::make_unique<optim::adam<double>>(std::vector{&w, &b}, optim::adam_options{.lr = 0.05});
    if (kind == 1)
      opt = std::make_unique<optim::adam<double>>(std::vector{&w, &b}, optim::adam_options{.lr = 0.05, .amsgrad = true});
    if (kind == 2)  // decoupled decay on the weight only: the bias is in the no-decay group
      opt = std::make_unique<optim::adamw<double>>(optim::weight_decay_groups(std::vector{&w, &b}),
                                                   optim::adamw_options{.lr = 0.05, .weight_decay = 1e-6});
    const auto sched = optim::cosine_schedule_with_warmup(20, 600);
    for (int step = 0; step < 600; ++step) {
      tape::current().reset();
      opt->zero_grad();
      var<double> l = mse_loss(var<double>(matmul(constant(X), w.use()) + b), y);
      l.backward();
      opt->scale_lr(sched(step));
      opt->step();
    }
    for (int k = 0; k < 3; ++k) CHECK(w.value()[k] == doctest::Approx(w_true[k]).epsilon(1e-3));
    CHECK(b.value()[0] == doctest::Approx(b_true).epsilon(1e-3));
  }
}

TEST_CASE("adam option errors") {
  parameter<float> p("p", {2});
  CHECK_THROWS_AS(optim::adam(std::vector{&p}, {.beta1 = 1.0}), std::invalid_argument);
  CHECK_THROWS_AS(optim::adamw(std::vector{&p}, {.beta2 = -0.1}), std::invalid_argument);
  CHECK_THROWS_AS(optim::adam(std::vector{&p}, {.eps = -1}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
