// SGD: PyTorch fixtures and a hand-written recurrence for plain, momentum, dampening, Nesterov and
// weight decay; parameter groups; convergence on a linear regression; option errors.
#include <doctest/doctest.h>

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/loss.hpp>
#include <hybrid/ops/matmul.hpp>
#include <hybrid/optim/sgd.hpp>

#include "fixtures/tiny_problem.hpp"

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("sgd matches PyTorch and a hand-written recurrence") {
  for (const auto& c : torch_optim::sgd_cases) {
    CAPTURE(c.momentum);
    CAPTURE(c.dampening);
    CAPTURE(c.weight_decay);
    CAPTURE(c.nesterov);
    const optim::sgd_options o{.lr = c.lr, .momentum = c.momentum, .dampening = c.dampening,
                               .weight_decay = c.weight_decay, .nesterov = c.nesterov};
    // Reference: torch.optim.SGD's loop written out per element.
    std::vector<double> buf(9);
    auto ref = reference_trace(c.lr, c.weight_decay, [&](int s, int i, double lr, double wd, double& p, double g) {
      double d = g + wd * p;
      if (o.momentum != 0) {
        buf[i] = s == 0 ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      p -= lr * d;
    });
    tiny_problem<double> pd;
    optim::sgd<double> opt(pd.groups(c.lr), o);
    auto got = pd.run(opt);
    for (int s = 0; s < torch_optim::steps; ++s)
      for (int i = 0; i < 9; ++i) {
        CHECK(got[s][i] == doctest::Approx(c.trace[s][i]).epsilon(1e-13));
        CHECK(ref[s][i] == doctest::Approx(c.trace[s][i]).epsilon(1e-13));
      }
    if (o.momentum != 0) {
      auto st = opt.state();
      REQUIRE(st.tensors.size() == 2);
      CHECK(st.tensors[0].name == "dense.weight.momentum_buffer");
      for (int i = 0; i < 9; ++i)
        CHECK(st.tensors[i < 6 ? 0 : 1].value[i < 6 ? i : i - 6] == doctest::Approx(c.buffer[i]).epsilon(1e-13));
    } else {
      CHECK(opt.state().tensors.empty());
    }
    // Float follows the double trajectory closely.
    tiny_problem<float> pf;
    optim::sgd<float> optf(pf.groups(c.lr), o);
    auto gotf = pf.run(optf);
    for (int i = 0; i < 9; ++i) CHECK(gotf.back()[i] == doctest::Approx(c.trace[4][i]).epsilon(1e-5).scale(1));
  }
}

TEST_CASE("sgd fits a linear regression, plain and with Nesterov momentum") {
  std::mt19937 rng(3);
  const int N = 64;
  tensor<double> X({N, 3}), y({N, 1});
  fill_uniform(X, rng);
  const double w_true[] = {1.5, -2.0, 0.5}, b_true = 0.3;
  for (int r = 0; r < N; ++r) y[r] = b_true + w_true[0] * X(r, 0) + w_true[1] * X(r, 1) + w_true[2] * X(r, 2);
  for (bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    parameter<double> w("w", {3, 1}), b("b", {1});
    optim::sgd opt(std::vector{&w, &b}, {.lr = nesterov ? 0.1 : 0.5, .momentum = nesterov ? 0.9 : 0.0,
                                         .nesterov = nesterov});
    double loss = 0;
    for (int step = 0; step < 300; ++step) {
      tape::current().reset();
      opt.zero_grad();
      var<double> l = mse_loss(var<double>(matmul(constant(X), w.use()) + b), y);
      loss = l.item();
      l.backward();
      opt.step();
    }
    CHECK(loss < 1e-10);
    for (int k = 0; k < 3; ++k) CHECK(w.value()[k] == doctest::Approx(w_true[k]).epsilon(1e-4));
    CHECK(b.value()[0] == doctest::Approx(b_true).epsilon(1e-4));
  }
}

TEST_CASE("sgd option errors") {
  parameter<float> p("p", {2});
  CHECK_THROWS_AS(optim::sgd(std::vector{&p}, {.momentum = 0, .nesterov = true}), std::invalid_argument);
  CHECK_THROWS_AS(optim::sgd(std::vector{&p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                  std::invalid_argument);
  CHECK_THROWS_AS(optim::sgd(std::vector{&p}, {.lr = -1}), std::invalid_argument);
}

}  // namespace HYBRID_TEST_UNIT
