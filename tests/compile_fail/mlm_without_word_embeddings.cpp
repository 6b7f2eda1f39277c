// Must NOT compile: a tied masked-LM head reads an encoder (ViT patches) that has no word embeddings.
// expect-error: static.assert[a-z]* failed.*ties its decoder to the word embeddings
#include <hybrid/enc/patch_image.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/mlm.hpp>
#include <hybrid/model.hpp>

constexpr hybrid::enc::patch_image_config vit{.size = 8, .channels = 1, .patch = 4, .width = 8, .layers = 1, .heads = 2, .ffn = 8};
using net = hybrid::model<hybrid::encoders<hybrid::modality<"image", hybrid::enc::patch_image<vit>>>, hybrid::fuse::concat,
                          hybrid::heads<hybrid::head::mlm<"mlm", 100, "image">>>;
int main() {
  net m;
  hybrid::batch b;
  auto out = m(b);
  return out.predictions.empty();
}
