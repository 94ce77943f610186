#include "model/receptive_field.h"

#include <gtest/gtest.h>

#include "model/backbone.h"
#include "model/protopnet.h"

namespace ppnet::model {
namespace {

void expect_rf(const ReceptiveField& rf, int64_t n, int64_t j, int64_t r, double start) {
  EXPECT_EQ(rf.n, n);
  EXPECT_EQ(rf.j, j);
  EXPECT_EQ(rf.r, r);
  EXPECT_DOUBLE_EQ(rf.start, start);
}

TEST(ReceptiveField, MatchesReferenceValuesForVgg) {
  ProtoPNetOptions o;
  o.num_classes = 2;
  o.prototypes_per_class = 1;
  o.arch = "vgg19";
  expect_rf(ProtoPNet(o)->receptive_field(224), 7, 32, 268, 16.0);
  o.arch = "vgg16";
  expect_rf(ProtoPNet(o)->receptive_field(224), 7, 32, 212, 16.0);
}

TEST(ReceptiveField, EveryBackboneGivesTheGridItsForwardGives) {
  for (const auto& arch : backbone_names()) {
    auto net = make_backbone(arch);
    net->eval();
    const int64_t size = arch.rfind("small", 0) == 0 ? 28 : 64;
    const auto rf = compute_receptive_field(size, net->layers());
    torch::NoGradGuard no_grad;
    const auto y = net->forward(torch::zeros({1, 3, size, size}));
    EXPECT_EQ(y.size(1), net->out_channels()) << arch;
    EXPECT_EQ(y.size(2), rf.n) << arch;
    EXPECT_EQ(y.size(3), rf.n) << arch;
  }
}

TEST(ReceptiveField, ImageNetBackbonesGiveSevenBySevenAt224) {
  for (const char* arch : {"vgg11", "resnet18", "resnet50", "densenet121"}) {
    const auto rf = compute_receptive_field(224, make_backbone(arch)->layers());
    EXPECT_EQ(rf.n, 7) << arch;
    EXPECT_EQ(rf.j, 32) << arch;
  }
}

TEST(ReceptiveField, CellBoxIsCentredAndClipped) {
  const ReceptiveField rf{7, 32, 212, 16.0};
  // Cell (0,0): centre 16, ±106 → clipped to [0, 122).
  EXPECT_EQ(cell_box(rf, 224, 0, 0), (std::array<int64_t, 4>{0, 0, 122, 122}));
  // Cell (3,6): rows centre 112 → [6, 218); columns centre 208 → [102, 224) after clipping.
  EXPECT_EQ(cell_box(rf, 224, 3, 6), (std::array<int64_t, 4>{102, 6, 224, 218}));
}

TEST(ReceptiveField, TooSmallImageIsAnError) {
  EXPECT_THROW(compute_receptive_field(8, make_backbone("vgg16")->layers()), std::invalid_argument);
}

}  // namespace
}  // namespace ppnet::model
