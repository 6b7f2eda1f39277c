// Must NOT compile: fuse::film<32> conditions modality 0, whose encoder width is 16.
// expect-error: width_check<32, 16>
#include <hybrid/fuse/film.hpp>

int main() {
  hybrid::fuse::film<32>::op<float, 16, 8> f;
  (void)f;
  return 0;
}
