// Hard parameter sharing, the default tower: every task reads the shared representation itself.
#include <doctest/doctest.h>

#include <hybrid/mtl/tower.hpp>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

TEST_CASE("hard sharing hands the same value to every task and owns no parameters") {
  using op = mtl::hard_sharing::op<float, 6, 3>;
  static_assert(mtl::tower_op<op, float, 3>);
  static_assert(op::width == 6);
  const std::array<std::string_view, 3> names{"a", "b", "c"};
  op t(names);
  int count = 0;
  t.visit("tower", [&](const std::string&, parameter<float>&) { ++count; });
  t.visit_shared("tower", [&](const std::string&, parameter<float>&) { ++count; });
  CHECK(count == 0);
  tape::current().reset();
  parameter<float> x("x", {2, 6});
  var<float> v = x.use();
  dropout_rng rng;
  const auto outs = t(v, rng, true);
  for (const auto& o : outs) CHECK(o.get() == v.get());
}

}  // namespace HYBRID_TEST_UNIT
