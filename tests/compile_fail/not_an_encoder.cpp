// Must NOT compile: a modality whose type is not an encoder.
// expect-error: static.assert[a-z]* failed.*modality: the type given is not an encoder
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>

struct not_an_encoder {};
using net = hybrid::model<hybrid::encoders<hybrid::modality<"text", not_an_encoder>>, hybrid::fuse::concat,
                          hybrid::heads<hybrid::head::classify<"topic", 3>>>;
int main() {
  net m;
  return 0;
}
