// Must NOT compile: fuse::sum<32> over encoders of widths 32 and 16.
// expect-error: width_check<32, 16>
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>

constexpr hybrid::enc::bert_config a{.vocab = 10, .hidden = 32, .layers = 1, .heads = 2, .ffn = 8};
constexpr hybrid::enc::bert_config b{.vocab = 10, .hidden = 16, .layers = 1, .heads = 2, .ffn = 8};
using bad = hybrid::model<hybrid::encoders<hybrid::modality<"text", hybrid::enc::bert<a>>,
                                           hybrid::modality<"title", hybrid::enc::bert<b>>>,
                          hybrid::fuse::sum<32>, hybrid::heads<hybrid::head::classify<"topic", 3>>>;
int main() {
  bad m;
  return 0;
}
