// embedding: lookups against a naive gather, scatter-add gradients (repeats, padding_idx), determinism, errors.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <hybrid/autodiff/elementwise.hpp>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/ops/embedding.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;
using test_util::random_param;

namespace {
template <class T = double>
std::vector<std::int32_t> random_ids(std::size_t n, int vocab, std::mt19937& rng) {
  std::vector<std::int32_t> ids(n);
  for (auto& i : ids) i = std::int32_t(rng() % unsigned(vocab));
  return ids;
}
template <class E, class F>
std::string thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL_CHECK("nothing thrown");
  return "";
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("embedding values match a naive gather, for any leading shape") {
  tape::current().reset();
  std::mt19937 rng(1);
  auto table = random_param<float>("table", {11, 5}, rng);
  const auto ids = random_ids(24, 11, rng);
  for (hybrid::shape lead : {hybrid::shape{24}, hybrid::shape{4, 6}, hybrid::shape{2, 3, 4}}) {
    var<float> y = embedding(table.use(), ids, lead);
    CHECK(y.shape().rank() == lead.rank() + 1);
    CHECK(y.shape().dropped(-1) == lead);
    CHECK(y.dim(-1) == 5);
    bool ok = true;
    for (std::size_t n = 0; n < ids.size(); ++n)
      for (int h = 0; h < 5; ++h) ok = ok && y[index_t(n) * 5 + h] == table.value()(ids[n], h);
    CHECK(ok);
  }
  // ids as a tensor; a single id with an empty leading shape.
  tensor<std::int32_t> t({2, 2}, {3, 0, 10, 3});
  var<float> y = embedding(table.use(), t);
  CHECK(y.shape() == hybrid::shape{2, 2, 5});
  CHECK(y[2 * 5 + 4] == table.value()(10, 4));
  const std::int32_t one[] = {7};
  var<float> s = embedding(table.use(), one, hybrid::shape{});
  CHECK(s.shape() == hybrid::shape{5});
  CHECK(s[1] == table.value()(7, 1));
}

TEST_CASE("embedding gradients: repeated ids, rank-3 lookups, composition") {
  std::mt19937 rng(2);
  auto table = random_param("table", {7, 3}, rng);
  const std::vector<std::int32_t> ids{1, 4, 1, 6, 0, 1, 4, 2, 2, 6, 6, 1};  // rows 3 and 5 unused
  for (hybrid::shape lead : {hybrid::shape{12}, hybrid::shape{3, 4}, hybrid::shape{2, 3, 2}}) {
    auto r = check_gradients([&] { return embedding(table.use(), ids, lead); }, {&table});
    INFO(r.report());
    CHECK(r.ok);
  }
  auto pos = random_param("pos", {4, 3}, rng);  // token + position embeddings, as BERT sums them
  const std::vector<std::int32_t> positions{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  auto r = check_gradients([&] {
    return var<double>(tanh(embedding(table.use(), ids, {3, 4}) + embedding(pos.use(), positions, {3, 4})));
  }, {&table, &pos});
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("padding_idx rows are looked up but get no gradient") {
  tape::current().reset();
  std::mt19937 rng(3);
  auto table = random_param("table", {6, 4}, rng);
  const std::vector<std::int32_t> ids{0, 3, 0, 5, 3, 0};
  var<double> y = embedding(table.use(), ids, {2, 3}, 0);
  CHECK(y[0] == table.value()(0, 0));  // the padding row is still read
  for (index_t i = 0; i < y.numel(); ++i) y.grad_data()[i] = double(i + 1);
  tape::current().run_backward();
  for (int v = 0; v < 6; ++v)
    for (int h = 0; h < 4; ++h) {
      double expect = 0;
      for (std::size_t n = 0; n < ids.size(); ++n)
        if (ids[n] == v && v != 0) expect += double(index_t(n) * 4 + h + 1);
      CHECK(table.grad()(v, h) == expect);
    }
  // The other rows still pass the finite-difference check (the padding id is unused here).
  auto r = check_gradients([&] { return embedding(table.use(), std::vector<std::int32_t>{1, 2, 2}, {3}, 0); }, {&table});
  INFO(r.report());
  CHECK(r.ok);
}

TEST_CASE("frozen tables and no_grad give results without gradients") {
  tape::current().reset();
  parameter<float> table("table", {4, 2});
  const std::int32_t ids[] = {1, 2};
  {
    no_grad ng;
    CHECK_FALSE(embedding(table.use(), ids, {2}).requires_grad());
  }
  table.set_trainable(false);
  const auto entries = tape::current().entries();
  CHECK_FALSE(embedding(table.use(), ids, {2}).requires_grad());
  CHECK(tape::current().entries() == entries);
}

TEST_CASE("large lookups: serial and tbb identical, scatter-add equals a naive sum") {
  std::mt19937 rng(4);
  auto table = random_param<float>("table", {50, 96}, rng);
  const auto ids = random_ids(4096, 50, rng);  // about 80 repeats of each id
  tensor<float> seed({4096, 96});
  fill_uniform(seed, rng);
  auto run = [&]<class E>(E) {
    tape::current().reset();
    table.zero_grad();
    var<float> y = embedding<E>(table.use(), ids, {32, 128}, 7);
    std::copy(seed.begin(), seed.end(), y.grad_data());
    tape::current().run_backward();
    std::vector<float> out(y.values().begin(), y.values().end());
    out.insert(out.end(), table.grad().begin(), table.grad().end());
    return out;
  };
  const auto a = run(exec::serial{}), b = run(exec::tbb{});
  CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  double worst = 0;
  for (int v = 0; v < 50; ++v)
    for (int h = 0; h < 96; ++h) {
      double s = 0;
      if (v != 7)
        for (std::size_t n = 0; n < ids.size(); ++n)
          if (ids[n] == v) s += seed[index_t(n) * 96 + h];
      worst = std::max(worst, std::abs(s - table.grad()(v, h)));
    }
  CHECK(worst < 1e-3);
}

TEST_CASE("embedding errors: ids out of range, shapes") {
  tape::current().reset();
  parameter<float> table("table", {10, 4});
  const std::vector<std::int32_t> ids{1, 2, 3, 4, 10, 5};
  std::string e = thrown<std::out_of_range>([&] { embedding(table.use(), ids, {2, 3}); });
  CHECK((has(e, "id 10") && has(e, "position 4") && has(e, "[1, 1]") && has(e, "10 rows")));
  e = thrown<std::out_of_range>([&] { embedding(table.use(), std::vector<std::int32_t>{0, -3}, {2}); });
  CHECK((has(e, "id -3") && has(e, "position 1")));
  e = thrown<shape_error>([&] { embedding(table.use(), ids, {4, 2}); });
  CHECK((has(e, "[6]") && has(e, "[4, 2]")));
  parameter<float> cube("cube", {2, 3, 4});
  e = thrown<shape_error>([&] { embedding(cube.use(), ids, {6}); });
  CHECK((has(e, "[2, 3, 4]") && has(e, "[6]")));
  CHECK_THROWS_AS(embedding(table.use(), ids, {1, 1, 2, 3}), shape_error);  // the result would be rank 5
  CHECK_THROWS_AS(embedding(table.use(), ids, {6}, 10), std::out_of_range);  // padding_idx past the table
}

}  // namespace HYBRID_TEST_UNIT
