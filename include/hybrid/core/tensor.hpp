// tensor<T>: a contiguous, 64-byte aligned, shared-ownership n-d array (rank <= 4) with cheap views.
// It is plain storage: autodiff values live in var<T>, which points into tensors or the tape arena.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "hybrid/core/aligned.hpp"
#include "hybrid/core/shape.hpp"

namespace hybrid {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using matrix_map = Eigen::Map<row_matrix<T>, Eigen::Aligned64>;
template <class T>
using const_matrix_map = Eigen::Map<const row_matrix<T>>;

template <class T>
class tensor {
 public:
  using value_type = T;

  tensor() = default;
  explicit tensor(const hybrid::shape& s) : shape_(s) {
    const auto n = static_cast<std::size_t>(s.numel());
    storage_.reset(static_cast<T*>(aligned_alloc_bytes(n * sizeof(T))), aligned_deleter{});
    data_ = storage_.get();
  }
  tensor(const hybrid::shape& s, T fill_value) : tensor(s) { fill(fill_value); }
  tensor(const hybrid::shape& s, std::initializer_list<T> values) : tensor(s) {
    if (static_cast<index_t>(values.size()) != s.numel())
      throw shape_error("tensor: " + std::to_string(values.size()) + " values given for shape " + s.str());
    std::copy(values.begin(), values.end(), data_);
  }
  static tensor zeros(const hybrid::shape& s) { return tensor(s, T(0)); }
  static tensor from(const hybrid::shape& s, std::span<const T> values) {
    if (static_cast<index_t>(values.size()) != s.numel())
      throw shape_error("tensor::from: " + std::to_string(values.size()) + " values given for shape " + s.str());
    tensor t(s);
    std::copy(values.begin(), values.end(), t.data_);
    return t;
  }

  const hybrid::shape& shape() const { return shape_; }
  index_t numel() const { return shape_.numel(); }
  int rank() const { return shape_.rank(); }
  index_t dim(int axis) const { return shape_.dim(axis); }
  bool empty() const { return data_ == nullptr; }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::span<T> span() { return {data_, static_cast<std::size_t>(numel())}; }
  std::span<const T> span() const { return {data_, static_cast<std::size_t>(numel())}; }
  T* begin() { return data_; }
  T* end() { return data_ + numel(); }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + numel(); }

  T& operator[](index_t i) { return data_[i]; }
  const T& operator[](index_t i) const { return data_[i]; }
  template <class... I>
  T& operator()(I... idx) { return data_[offset(idx...)]; }
  template <class... I>
  const T& operator()(I... idx) const { return data_[offset(idx...)]; }

  void fill(T v) { std::fill(begin(), end(), v); }
  tensor clone() const {
    tensor t(shape_);
    if (numel()) std::memcpy(t.data_, data_, static_cast<std::size_t>(numel()) * sizeof(T));
    return t;
  }

  // Views share storage with *this.
  tensor reshaped(const hybrid::shape& s) const {
    if (s.numel() != numel()) throw shape_error("tensor::reshaped", "tensor", shape_, "new shape", s);
    tensor t = *this;
    t.shape_ = s;
    return t;
  }
  // Rows [first, first+count) along axis 0.
  tensor slice(index_t first, index_t count) const {
    if (rank() == 0 || first < 0 || count < 0 || first + count > shape_[0])
      throw shape_error("tensor::slice: rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                        ") out of range for shape " + shape_.str());
    tensor t = *this;
    t.data_ = data_ + first * (numel() / std::max<index_t>(shape_[0], 1));
    t.shape_[0] = count;
    return t;
  }

  // The tensor as a rows x cols row-major matrix (see shape::rows/cols).
  Eigen::Map<row_matrix<T>> matrix() { return {data_, shape_.rows(), shape_.cols()}; }
  Eigen::Map<const row_matrix<T>> matrix() const { return {data_, shape_.rows(), shape_.cols()}; }
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> vector() { return {data_, numel()}; }
  Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>> vector() const { return {data_, numel()}; }

 private:
  template <class... I>
  index_t offset(I... idx) const {
    static_assert(sizeof...(I) <= max_rank, "tensor: at most 4 indices");
    const index_t ids[] = {static_cast<index_t>(idx)...};
    index_t off = 0;
    for (int a = 0; a < static_cast<int>(sizeof...(I)); ++a) off = off * shape_[a] + ids[a];
    return off;
  }

  hybrid::shape shape_;
  std::shared_ptr<T> storage_;
  T* data_ = nullptr;
};

}  // namespace hybrid
