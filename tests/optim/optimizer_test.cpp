// The optimizer base: groups and their options, frozen parameters, zero_grad, learning rates,
// state save/restore (bitwise resume), names, and the BERT decay / no-decay grouping.
#include <doctest/doctest.h>

#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/optim/adam.hpp>
#include <hybrid/optim/sgd.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("groups take their own lr and weight decay, defaulting to the optimizer's") {
  parameter<double> w("w", tensor<double>({2}, {1.0, 2.0})), b("b", tensor<double>({1}, {3.0}));
  optim::sgd<double> opt({{.params = {&w}}, {.params = {&b}, .lr = 0.5, .weight_decay = 0.0}},
                         {.lr = 0.1, .weight_decay = 0.2});
  REQUIRE(opt.groups().size() == 2);
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(1) == 0.5);
  CHECK(opt.groups()[0].weight_decay == 0.2);
  CHECK(opt.groups()[1].weight_decay == 0.0);
  w.grad().fill(1.0);
  b.grad().fill(1.0);
  opt.step();
  CHECK(w.value()[0] == doctest::Approx(1.0 - 0.1 * (1.0 + 0.2 * 1.0)));
  CHECK(b.value()[0] == doctest::Approx(3.0 - 0.5));
  CHECK(opt.parameters() == std::vector{&w, &b});
}

TEST_CASE("frozen parameters are skipped; zero_grad clears gradients") {
  parameter<float> a("a", tensor<float>({2}, {1.f, 1.f})), f("f", tensor<float>({2}, {1.f, 1.f}));
  f.set_trainable(false);
  optim::adam opt(std::vector{&a, &f}, {.lr = 0.1});
  a.grad().fill(1.f);
  f.grad().fill(1.f);
  opt.step();
  CHECK(a.value()[0] < 1.f);
  CHECK(f.value()[0] == 1.f);
  opt.zero_grad();
  CHECK(a.grad()[0] == 0.f);
  CHECK(f.grad()[1] == 0.f);
}

TEST_CASE("set_lr and scale_lr") {
  parameter<float> a("a", {1}), b("b", {1});
  optim::sgd<float> opt({{.params = {&a}}, {.params = {&b}, .lr = 0.2}}, {.lr = 0.1});
  opt.scale_lr(0.5);
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.1));
  opt.set_lr(0.3);
  CHECK(opt.lr(1) == 0.3);
  opt.scale_lr(0.5);
  CHECK(opt.lr(0) == doctest::Approx(0.15));
}

TEST_CASE("state round trip: saving after 3 steps and resuming gives the same bits as 5 steps") {
  std::mt19937 rng(4);
  auto make = [&] {
    parameter<float> p("enc.weight", {5, 7});
    std::mt19937 r(1);
    fill_uniform(p.value(), r);
    return p;
  };
  std::vector<tensor<float>> grads;
  for (int s = 0; s < 5; ++s) {
    grads.emplace_back(hybrid::shape{5, 7});
    fill_uniform(grads.back(), rng);
  }
  auto step = [&](auto& opt, parameter<float>& p, int s) {
    std::copy(grads[std::size_t(s)].begin(), grads[std::size_t(s)].end(), p.grad().begin());
    opt.step();
  };
  parameter<float> p1 = make(), p2 = make();
  optim::adam<float> full(std::vector{&p1}, {.lr = 0.01, .amsgrad = true});
  for (int s = 0; s < 5; ++s) step(full, p1, s);

  optim::optimizer_state<float> saved;
  {
    optim::adam<float> first(std::vector{&p2}, {.lr = 0.01, .amsgrad = true});
    for (int s = 0; s < 3; ++s) step(first, p2, s);
    auto st = first.state();
    saved.step = st.step;
    for (auto& t : st.tensors) saved.tensors.push_back({t.name, t.value.clone()});  // outlives `first`
  }
  CHECK(saved.step == 3);
  REQUIRE(saved.tensors.size() == 3);
  CHECK(saved.tensors[2].name == "enc.weight.max_exp_avg_sq");
  optim::adam<float> resumed(std::vector{&p2}, {.lr = 0.01, .amsgrad = true});
  resumed.load_state(saved);
  CHECK(resumed.step_count() == 3);
  for (int s = 3; s < 5; ++s) step(resumed, p2, s);
  CHECK(std::equal(p1.value().begin(), p1.value().end(), p2.value().begin()));

  // Errors: a missing tensor, a wrong shape.
  optim::adam<float> other(std::vector{&p2}, {});
  auto bad = saved;
  bad.tensors.pop_back();
  optim::adam<float> ams(std::vector{&p2}, {.amsgrad = true});
  CHECK_THROWS_WITH_AS(ams.load_state(bad), doctest::Contains("enc.weight.max_exp_avg_sq"), std::invalid_argument);
  bad = saved;
  bad.tensors[0].value = tensor<float>({3});
  CHECK_THROWS_AS(ams.load_state(bad), shape_error);
  // The state tensors share storage: writing into them is loading.
  auto live = other.state();
  live.tensors[0].value.fill(7.f);
  CHECK(other.state().tensors[0].value[0] == 7.f);
}

TEST_CASE("state names fall back to indices for unnamed or duplicate names") {
  parameter<float> a("", {1}), b("x", {1}), c("x", {1}), d("d", {2});
  optim::sgd<float> opt(std::vector{&a, &b, &c, &d}, {.momentum = 0.9});
  auto st = opt.state();
  REQUIRE(st.tensors.size() == 4);
  CHECK(st.tensors[0].name == "0.momentum_buffer");
  CHECK(st.tensors[1].name == "1.momentum_buffer");
  CHECK(st.tensors[2].name == "2.momentum_buffer");
  CHECK(st.tensors[3].name == "d.momentum_buffer");
}

TEST_CASE("a parameter in two groups, or a null one, is an error") {
  parameter<float> a("a", {1});
  CHECK_THROWS_WITH_AS(optim::sgd<float>({{.params = {&a}}, {.params = {&a}}}, {}), doctest::Contains("'a'"),
                       std::invalid_argument);
  CHECK_THROWS_AS(optim::sgd<float>(std::vector<parameter<float>*>{nullptr}, {}), std::invalid_argument);
}

TEST_CASE("weight_decay_groups: biases and LayerNorm weights get no weight decay") {
  CHECK(optim::no_decay_name("encoder.layer.0.attention.self.query.bias"));
  CHECK(optim::no_decay_name("encoder.layer.0.attention.output.LayerNorm.weight"));
  CHECK(optim::no_decay_name("embeddings.layer_norm.weight"));
  CHECK_FALSE(optim::no_decay_name("encoder.layer.0.attention.self.query.weight"));
  CHECK_FALSE(optim::no_decay_name("bias_proj.weight"));
  parameter<float> qw("q.weight", {1}), qb("q.bias", {1}), ln("LayerNorm.weight", {1}), e("emb.weight", {1});
  auto groups = optim::weight_decay_groups(std::vector{&qw, &qb, &ln, &e});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].params == std::vector{&qw, &e});
  CHECK_FALSE(groups[0].weight_decay.has_value());
  CHECK(groups[1].params == std::vector{&qb, &ln});
  CHECK(groups[1].weight_decay == 0.0);
  optim::adamw opt(groups, {.lr = 0.1, .weight_decay = 0.5});
  CHECK(opt.groups()[0].weight_decay == 0.5);
  CHECK(opt.groups()[1].weight_decay == 0.0);
  // A custom predicate; an empty group is left out.
  auto all = optim::weight_decay_groups(std::vector{&qw, &e}, [](std::string_view) { return false; });
  CHECK(all.size() == 1);
}

}  // namespace HYBRID_TEST_UNIT
