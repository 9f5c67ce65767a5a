"""cnnfast.applications.torchvision — torchvision's classification networks, NHWC.

    from cnnfast.applications import torchvision as tv
    model = tv.resnet50(weights="IMAGENET1K_V2")            # downloaded once, SHA-256 prefix checked
    model = tv.resnet18(weights="resnet18.pth")             # torch.save(net.state_dict(), ...)
    model = tv.mobilenet_v2(weights="mnv2.safetensors", include_top=False, pooling="avg")
    probs = model.predict(tv.preprocess_input(images_0_255_nhwc))
    tv.decode_predictions(probs, top=5)

Each builder mirrors the torchvision model of the same name exactly (same layers, same parameter
count, same outputs on the same weights, up to float rounding) and names its layers after the
torchvision ``state_dict`` keys, so that weights map by name (``layer1.0.conv1``,
``features.3.conv.1.0``, ...): ``resnet18``, ``resnet34``, ``resnet50``, ``mobilenet_v2``,
``vgg16``, ``efficientnet_b0``. Keyword arguments are those of Keras's applications:

* ``weights``: None (random), ``"imagenet"`` / ``"DEFAULT"`` (torchvision's default ImageNet
  weights), a torchvision weight name such as ``"IMAGENET1K_V1"``, the path of a ``state_dict``
  file (``.pth`` zip written by ``torch.save``, read without torch and without running pickle
  code; ``.safetensors``; ``.npz``), or a mapping of names to arrays. A missing or unused key or a
  wrong shape raises a ValueError naming the key and the layer.
* ``input_shape``: ``(height, width, 3)``, default ``(None, None, 3)`` (any size >= 32), VGG16
  with its head ``(224, 224, 3)``; or ``input_tensor``, a tensor from ``cnnfast.layers.Input``.
* ``include_top`` (torchvision's classifier), ``pooling`` (None, "avg", "max" when
  ``include_top=False``), ``classes``.
* ``classifier_activation``: None, as torchvision (logits); Keras's applications use "softmax".

Batch norm uses torch's ``eps=1e-5`` and momentum (Keras ``momentum=0.9``); torch's symmetric
padding is explicit ``padding=((p, p), (p, p))`` (also at stride 2); ReLU6 is ``ReLU(max_value=6)``.
"""
from ._weights import DEFAULT as DEFAULT_WEIGHTS
from ._weights import PUBLISHED as PUBLISHED_WEIGHTS
from .efficientnet import efficientnet_b0
from .imagenet import decode_predictions, preprocess_input
from .mobilenet_v2 import mobilenet_v2
from .resnet import resnet18, resnet34, resnet50
from .vgg import vgg16

__all__ = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "vgg16", "efficientnet_b0", "preprocess_input",
           "decode_predictions", "PUBLISHED_WEIGHTS", "DEFAULT_WEIGHTS"]
