"""minidl's layers, with Keras's names, arguments and defaults.

Read them in this order: ``dense.py`` -> ``activation.py`` -> ``conv.py`` ->
``normalization.py`` -> ``pooling.py`` -> ``global_pooling.py`` ->
``merge.py``; ``base.py`` holds the protocol they share.
"""
from minidl.layers.base import Layer, SymbolicTensor, Node, clear_session, no_backward
from minidl.layers.input_spec import InputSpec
from minidl.layers.input_layer import Input, InputLayer
from minidl.layers.dense import Dense
from minidl.layers.activation import Activation
from minidl.layers.dropout import Dropout
from minidl.layers.flatten import Flatten
from minidl.layers.conv import Conv2D
from minidl.layers.normalization import BatchNormalization
from minidl.layers.pooling import MaxPooling2D, AveragePooling2D, MaxPool2D, AvgPool2D
from minidl.layers.global_pooling import GlobalAveragePooling2D, GlobalAvgPool2D
from minidl.layers.global_max_pooling import GlobalMaxPooling2D, GlobalMaxPool2D
from minidl.layers.merge import Concatenate, concatenate

Convolution2D = Conv2D

__all__ = [
    "Layer", "InputSpec", "SymbolicTensor", "Node", "clear_session", "no_backward", "Input", "InputLayer",
    "Dense", "Activation", "Dropout", "Flatten", "Conv2D", "Convolution2D", "BatchNormalization",
    "MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D", "GlobalAveragePooling2D",
    "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D", "Concatenate", "concatenate",
]
