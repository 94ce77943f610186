# CUB-200-2011 with the paper's settings, for a machine with a GPU (and a CUDA build of
# LibTorch): make -f examples/cub200.mk CUB_TGZ=~/CUB_200_2011.tgz ARCH=vgg19 WEIGHTS=vgg19.safetensors
#
# Accuracy the paper reports on cropped CUB-200-2011 test images (Chen et al. 2019, Table 1):
#   vgg16 76.1%   vgg19 78.0%   resnet34 79.2%   resnet152 78.0%   densenet121 80.2%   densenet161 80.1%
# (resnet50 is the iNaturalist-pretrained variant in later work; any torchvision backbone here works.)
#
# Pretrained ImageNet weights are files you supply; ppnet downloads nothing. From torchvision, in
# Python, once (this also converts torchvision's legacy-format VGG and DenseNet files):
#   python3 -c "import torch, torchvision; m = torchvision.models.vgg19(weights='IMAGENET1K_V1'); \
#               torch.save(dict(m.state_dict()), 'vgg19.pth')"
# or a timm / Hugging Face .safetensors file with the same architecture (e.g. resnet50.a1_in1k).
# Check a file before training: ppnet weights --arch vgg19 --weights vgg19.pth

CUB_TGZ ?= CUB_200_2011.tgz
ARCH ?= vgg19
WEIGHTS ?=
DEVICE ?= cuda

all:
	$(MAKE) -f Makefile.data cub CUB_TGZ=$(CUB_TGZ) CUB_COPIES=10 CUB_VAL_FRACTION=0.1
	$(MAKE) -f Makefile.data pipeline DATA=data/cub RUN=runs/cub-$(ARCH) ARCH=$(ARCH) IMG_SIZE=224 \
	  PROTOTYPES=10 DIM=128 WEIGHTS=$(WEIGHTS) WARM_EPOCHS=5 JOINT_EPOCHS=10 BATCH=80 \
	  LAST_OPTIONS="--solver adam --epochs 20" \
	  TRAIN_OPTIONS="--device $(DEVICE)" EXPLAIN_SHARD=0/100
