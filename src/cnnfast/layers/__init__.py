"""cnnfast.layers — Keras layers with the same names, arguments and defaults (channels_last).

    from cnnfast import layers
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
"""
from .activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import Input, InputLayer, KerasTensor, Layer, Variable
from .conv import Conv2D, Conv2DTranspose, DepthwiseConv2D
from .core import Activation, Dense, Dropout, Rescaling
from .identity import Identity
from .merging import (Add, Average, Concatenate, Multiply, Subtract, add, average, concatenate,
                      multiply, subtract)
from .normalization import BatchNormalization
from .preprocessing import Normalization
from .regularization import (ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise,
                             SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from .sample_normalization import GroupNormalization, LayerNormalization, UnitNormalization
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .reshaping import Cropping2D, Flatten, Permute, Reshape, UpSampling2D, ZeroPadding2D
from .separable_conv import SeparableConv2D, SeparableConvolution2D

Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose

__all__ = ["Layer", "Variable", "KerasTensor", "Input", "InputLayer", "Dense", "Activation", "Dropout",
           "Rescaling", "Normalization", "Conv2D", "Convolution2D", "Conv2DTranspose", "Convolution2DTranspose",
           "DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D", "MaxPooling2D", "MaxPool2D",
           "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "Flatten", "Reshape", "Permute", "UpSampling2D", "ZeroPadding2D", "Cropping2D", "ReLU", "LeakyReLU",
           "Softmax", "BatchNormalization", "Add", "Subtract", "Multiply", "Average", "Concatenate",
           "add", "subtract", "multiply", "average", "concatenate"]
__all__ += ["LayerNormalization", "GroupNormalization", "UnitNormalization", "SpatialDropout1D",
            "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "ActivityRegularization", "PReLU", "ELU", "Identity"]

# Classes that may be rebuilt from a saved config (the loader's allow-list; models add theirs).
SERIALIZABLE = {cls.__name__: cls for cls in (
    InputLayer, Dense, Activation, Dropout, Rescaling, Normalization, Conv2D, Conv2DTranspose, DepthwiseConv2D,
    SeparableConv2D,
    MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Reshape,
    Permute, UpSampling2D, ZeroPadding2D, Cropping2D, ReLU, LeakyReLU, Softmax, BatchNormalization, Add,
    Subtract, Multiply, Average, Concatenate)}
SERIALIZABLE.update({cls.__name__: cls for cls in (
    LayerNormalization, GroupNormalization, UnitNormalization, SpatialDropout1D, SpatialDropout2D,
    SpatialDropout3D, GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization, PReLU, ELU,
    Identity)})

# 1-D layers for sequences (text CNNs), on the 2-D kernels through (batch, 1, steps, channels) views.
from .conv1d import Conv1D, Convolution1D, SeparableConv1D, SeparableConvolution1D
from .pooling1d import (AveragePooling1D, AvgPool1D, GlobalAveragePooling1D, GlobalAvgPool1D,
                        GlobalMaxPool1D, GlobalMaxPooling1D, MaxPool1D, MaxPooling1D)
from .reshaping1d import Cropping1D, UpSampling1D, ZeroPadding1D

__all__ += ["Conv1D", "Convolution1D", "SeparableConv1D", "SeparableConvolution1D", "MaxPooling1D",
            "MaxPool1D", "AveragePooling1D", "AvgPool1D", "GlobalMaxPooling1D", "GlobalMaxPool1D",
            "GlobalAveragePooling1D", "GlobalAvgPool1D", "UpSampling1D", "ZeroPadding1D", "Cropping1D"]
SERIALIZABLE.update({cls.__name__: cls for cls in (
    Conv1D, SeparableConv1D, MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D,
    UpSampling1D, ZeroPadding1D, Cropping1D)})

# 3-D layers for volumes, on the 2-D kernels (each depth tap / slice pass a batched 2-D call).
from .conv3d import Conv3D, Conv3DTranspose
from .pooling3d import (AveragePooling3D, AvgPool3D, GlobalAveragePooling3D, GlobalAvgPool3D,
                        GlobalMaxPool3D, GlobalMaxPooling3D, MaxPool3D, MaxPooling3D)
from .reshaping3d import Cropping3D, UpSampling3D, ZeroPadding3D

Convolution3D = Conv3D
Convolution3DTranspose = Conv3DTranspose
__all__ += ["Conv3D", "Convolution3D", "Conv3DTranspose", "Convolution3DTranspose", "MaxPooling3D",
            "MaxPool3D", "AveragePooling3D", "AvgPool3D", "GlobalAveragePooling3D", "GlobalAvgPool3D",
            "GlobalMaxPooling3D", "GlobalMaxPool3D", "UpSampling3D", "ZeroPadding3D", "Cropping3D"]
SERIALIZABLE.update({cls.__name__: cls for cls in (
    Conv3D, Conv3DTranspose, MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D,
    UpSampling3D, ZeroPadding3D, Cropping3D)})

from .augmentation import RandomCrop, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .augmentation_color import RandomBrightness, RandomContrast
from .resizing import CenterCrop, Resizing
__all__ += ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop", "RandomContrast",
            "RandomBrightness", "Resizing", "CenterCrop"]
SERIALIZABLE.update({c.__name__: c for c in (RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
                                             RandomCrop, RandomContrast, RandomBrightness, Resizing, CenterCrop)})

from .lambda_layer import Lambda, register_keras_serializable
from .merging import Dot, Maximum, Minimum, dot, maximum, minimum
from .repeat_vector import RepeatVector
__all__ += ["Maximum", "Minimum", "Dot", "maximum", "minimum", "dot", "RepeatVector", "Lambda",
            "register_keras_serializable"]
SERIALIZABLE.update({c.__name__: c for c in (Maximum, Minimum, Dot, RepeatVector, Lambda)})

from .embedding import Embedding
from .text_vectorization import TextVectorization
__all__ += ["Embedding", "TextVectorization"]
SERIALIZABLE.update({c.__name__: c for c in (Embedding, TextVectorization)})
