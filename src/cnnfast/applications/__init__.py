"""cnnfast.applications — pretrained network architectures (Keras's and torchvision's), NHWC.

Keras 3's ImageNet models, with Keras's layers, layer names, arguments and input rules, so the
weights Keras publishes (``weights="imagenet"``) or a Keras model's own weights load into them::

    from cnnfast import applications
    model = applications.ResNet50(weights=None, input_shape=(64, 64, 3), include_top=False,
                                  pooling="avg")
    x = applications.resnet.preprocess_input(images.astype("float32"))
    preds = applications.ResNet50()(x)                      # downloads Keras's weights once
    applications.resnet.decode_predictions(preds, top=3)    # [[(wnid, name, score), ...], ...]

Each family's module has its own ``preprocess_input`` and ``decode_predictions`` as in Keras:
``resnet`` (alias ``resnet50``), ``vgg16``, ``mobilenet_v2``, ``efficientnet``, ``xception``.
"""
from . import efficientnet, imagenet_utils, mobilenet_v2, resnet, vgg16, xception
from .efficientnet import EfficientNetB0
from .mobilenet_v2 import MobileNetV2
from .resnet import ResNet50
from .vgg16 import VGG16
from .xception import Xception

resnet50 = resnet

__all__ = ["ResNet50", "MobileNetV2", "VGG16", "EfficientNetB0", "Xception", "resnet", "resnet50",
           "vgg16", "mobilenet_v2", "efficientnet", "xception", "imagenet_utils"]
