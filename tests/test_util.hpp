// Helpers shared by the op and autodiff tests: random double parameters and the finite-difference gradient check
// as one doctest assertion.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <hybrid/autodiff/gradient_check.hpp>
#include <random>
#include <string>
#include <vector>

namespace test_util {

// A parameter of shape s, uniform in [lo, hi).
template <class T = double>
hybrid::parameter<T> random_param(const char* name, hybrid::shape s, std::mt19937& rng, double lo = -1, double hi = 1) {
  hybrid::parameter<T> p(name, s);
  hybrid::fill_uniform(p.value(), rng, lo, hi);
  return p;
}

// Every double parameter of `model` (its visit order) filled uniform in [lo, hi): the list check_gradients takes.
template <class M>
std::vector<hybrid::parameter<double>*> randomized_parameters(M& model, std::mt19937& rng, double lo = -0.8,
                                                             double hi = 0.8) {
  std::vector<hybrid::parameter<double>*> ps;
  model.visit("", [&](const std::string&, hybrid::parameter<double>& p) {
    hybrid::fill_uniform(p.value(), rng, lo, hi);
    ps.push_back(&p);
  });
  return ps;
}

// check_gradients(f, ps) passes; the report is printed when it does not.
template <class F>
void expect_gradients(F&& f, std::vector<hybrid::parameter<double>*> ps, hybrid::gradient_check_options opt = {}) {
  auto r = hybrid::check_gradients(f, ps, opt);
  INFO(r.report());
  CHECK(r.ok);
}

// a and b have the same shape and bitwise the same values.
template <class T>
bool same_values(const hybrid::tensor<T>& a, const hybrid::tensor<T>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace test_util
