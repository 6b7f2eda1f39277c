// Everything of hybrid that needs only the core target hybrid::hybrid (Eigen, xsimd, oneTBB, OpenBLAS):
// tensors, autodiff, ops, layers, encoders, fusion, heads, multi-task learning, models, optimizers.
// File formats, tokenizer, data sets and pipelines need hybrid::io and are included one by one
// (hybrid/io/*.hpp, hybrid/data/*.hpp, hybrid/pipeline/*.hpp, hybrid/train/*.hpp). Including single headers
// instead of this one compiles faster; this one is for getting started.
#pragma once

#include "hybrid/version.hpp"

#include "hybrid/core/shape.hpp"
#include "hybrid/core/tensor.hpp"

#include "hybrid/autodiff/elementwise.hpp"
#include "hybrid/autodiff/gradient_check.hpp"
#include "hybrid/autodiff/parameter.hpp"
#include "hybrid/autodiff/tape.hpp"
#include "hybrid/autodiff/var.hpp"

#include "hybrid/backend/gemm.hpp"
#include "hybrid/backend/parallel.hpp"
#include "hybrid/backend/prepacked_weights.hpp"
#include "hybrid/backend/simd.hpp"

#include "hybrid/ops/conv.hpp"
#include "hybrid/ops/dropout.hpp"
#include "hybrid/ops/embedding.hpp"
#include "hybrid/ops/layer_norm.hpp"
#include "hybrid/ops/loss.hpp"
#include "hybrid/ops/matmul.hpp"
#include "hybrid/ops/pool.hpp"
#include "hybrid/ops/reduce.hpp"
#include "hybrid/ops/shape_ops.hpp"
#include "hybrid/ops/softmax.hpp"

#include "hybrid/layers/attention.hpp"
#include "hybrid/layers/attention_pool.hpp"
#include "hybrid/layers/conv.hpp"
#include "hybrid/layers/embedding.hpp"
#include "hybrid/layers/layer_norm.hpp"
#include "hybrid/layers/linear.hpp"
#include "hybrid/layers/lora.hpp"
#include "hybrid/layers/mlp.hpp"
#include "hybrid/layers/module.hpp"
#include "hybrid/layers/transformer_block.hpp"

#include "hybrid/audio/log_mel.hpp"
#include "hybrid/enc/audio.hpp"
#include "hybrid/enc/bert.hpp"
#include "hybrid/enc/conv_image.hpp"
#include "hybrid/enc/encoder.hpp"
#include "hybrid/enc/patch_image.hpp"
#include "hybrid/enc/tabular.hpp"

#include "hybrid/fuse/attention_pool.hpp"
#include "hybrid/fuse/bayes.hpp"
#include "hybrid/fuse/concat.hpp"
#include "hybrid/fuse/cross_attention.hpp"
#include "hybrid/fuse/film.hpp"
#include "hybrid/fuse/fusion.hpp"
#include "hybrid/fuse/gated.hpp"
#include "hybrid/fuse/low_rank.hpp"
#include "hybrid/fuse/missing.hpp"
#include "hybrid/fuse/tensor.hpp"

#include "hybrid/head/classify.hpp"
#include "hybrid/head/contrastive.hpp"
#include "hybrid/head/head.hpp"
#include "hybrid/head/mlm.hpp"
#include "hybrid/head/multilabel.hpp"
#include "hybrid/head/tagging.hpp"

#include "hybrid/mtl/cagrad.hpp"
#include "hybrid/mtl/gradnorm.hpp"
#include "hybrid/mtl/metrics.hpp"
#include "hybrid/mtl/mgda.hpp"
#include "hybrid/mtl/mmoe.hpp"
#include "hybrid/mtl/pcgrad.hpp"
#include "hybrid/mtl/surgery.hpp"
#include "hybrid/mtl/task_gradients.hpp"
#include "hybrid/mtl/tower.hpp"
#include "hybrid/mtl/weighting.hpp"

#include "hybrid/any_model.hpp"
#include "hybrid/batch.hpp"
#include "hybrid/model.hpp"

#include "hybrid/optim/adam.hpp"
#include "hybrid/optim/clip.hpp"
#include "hybrid/optim/optimizer.hpp"
#include "hybrid/optim/schedule.hpp"
#include "hybrid/optim/sgd.hpp"
