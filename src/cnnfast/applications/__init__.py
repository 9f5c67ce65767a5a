"""cnnfast.applications — pretrained network architectures (Keras's and torchvision's), NHWC."""
