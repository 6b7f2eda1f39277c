// Must NOT compile: fuse::cross_attention<64> whose query modality (index 0) has width 32.
// expect-error: width_check<64, 32>
#include <hybrid/fuse/cross_attention.hpp>

int main() {
  hybrid::fuse::cross_attention<64>::op<float, 32, 64> f;
  (void)f;
  return 0;
}
