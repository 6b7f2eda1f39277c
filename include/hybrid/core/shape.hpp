// Runtime tensor shapes (rank 0..4) and the shape_error every op throws on a mismatch.
// Structure is static in hybrid; sizes of data (batch, sequence length) are runtime values held here.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace hybrid {

using index_t = std::int64_t;
inline constexpr int max_rank = 4;

class shape {
 public:
  constexpr shape() = default;
  constexpr shape(std::initializer_list<index_t> dims) {
    if (dims.size() > max_rank) throw std::invalid_argument("hybrid::shape: rank above 4");
    for (index_t d : dims) {
      if (d < 0) throw std::invalid_argument("hybrid::shape: negative dimension");
      dims_[rank_++] = d;
    }
  }
  template <class It>
  static shape from_range(It first, It last) {
    shape s;
    for (; first != last; ++first) {
      if (s.rank_ == max_rank) throw std::invalid_argument("hybrid::shape: rank above 4");
      if (*first < 0) throw std::invalid_argument("hybrid::shape: negative dimension");
      s.dims_[s.rank_++] = static_cast<index_t>(*first);
    }
    return s;
  }

  constexpr int rank() const { return rank_; }
  constexpr index_t operator[](int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  constexpr index_t& operator[](int axis) { return dims_[static_cast<std::size_t>(axis)]; }
  // Negative axes count from the end, as in PyTorch.
  constexpr int axis(int a) const { return a < 0 ? a + rank_ : a; }
  constexpr index_t dim(int a) const { return dims_[static_cast<std::size_t>(axis(a))]; }
  constexpr index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  // The last dimension ("columns") and the product of the others ("rows"): every elementwise and
  // row-wise kernel views a tensor as a rows x cols matrix.
  constexpr index_t cols() const { return rank_ == 0 ? 1 : dims_[static_cast<std::size_t>(rank_ - 1)]; }
  constexpr index_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }

  constexpr shape with(int a, index_t value) const {
    shape s = *this;
    s.dims_[static_cast<std::size_t>(axis(a))] = value;
    return s;
  }
  constexpr shape dropped(int a) const {
    shape s;
    for (int i = 0; i < rank_; ++i)
      if (i != axis(a)) s.dims_[static_cast<std::size_t>(s.rank_++)] = dims_[static_cast<std::size_t>(i)];
    return s;
  }

  friend constexpr bool operator==(const shape& a, const shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)]) return false;
    return true;
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }

 private:
  std::array<index_t, max_rank> dims_{};
  int rank_ = 0;
};

// Thrown when shapes do not fit together at run time; the message names the op and both shapes.
class shape_error : public std::invalid_argument {
 public:
  shape_error(const std::string& op, const std::string& what_a, const shape& a, const std::string& what_b,
              const shape& b, const std::string& why = "")
      : std::invalid_argument(op + ": " + what_a + " " + a.str() + " does not fit " + what_b + " " + b.str() +
                              (why.empty() ? "" : " (" + why + ")")) {}
  explicit shape_error(const std::string& message) : std::invalid_argument(message) {}
};

}  // namespace hybrid
