"""Rules of the convolutions: Conv1D/2D/3D (ungrouped, grouped and depthwise-grouped),
DepthwiseConv1D/2D, SeparableConv1D/2D and their spectral counterparts.

- An ungrouped convolution produces `filters` channels and reads its input channels.
- A depthwise convolution (and a `Conv` with `groups` equal to its input channels)
  passes channel `i` through with weights of its own: with m outputs per channel
  (`depth_multiplier`, or `filters / groups`), channel `i` becomes outputs `i·m … i·m+m−1`.
- A separable convolution is a depthwise step and a pointwise convolution: it reads
  channels and produces new ones, like an ungrouped convolution.
- A grouped convolution with `1 < groups < channels` produces channels and reads its
  input channels, tied group-wise: the same positions are removed in every group (as in
  Torch-Pruning), so the groups stay equal.
"""

import keras
import numpy as np

from keras_spectral.cloning import clone_layer
from keras_spectral.convolutional import _SpectralConv
from keras_spectral.graph.rules.base import (
    OPAQUE, PER_FEATURE, PRODUCE, RELAY, Produce, Rule, data_format_first, describe, input_rank, register_rule,
)
from keras_spectral.graph.rules.weights import build_with_eigenvectors, numpy, with_spectral_state
from keras_spectral.separable import _SpectralSeparableConv


def _layout_reason(call, graph, first):
    """Why the convolution would read another axis than the channels, or None."""
    layer = call.layer
    if first is None or input_rank(call, graph) <= 2 or data_format_first(layer) == first:
        return None
    return (f"reaches {describe(layer)}: it takes data_format='{layer.data_format}', but the channels are on "
            f"axis {1 if first else -1}")


def _positions(call, graph):
    """Output positions of one sample (unknown sizes count as 1)."""
    shape = graph.tensors[call.outputs[0]].shape
    spatial = shape[2:] if data_format_first(call.layer) else shape[1:-1]
    return int(np.prod([d or 1 for d in spatial]))


def _in_channels(call, graph):
    return int(graph.tensors[call.inputs[0]].shape[1 if data_format_first(call.layer) else -1])


def _multiplied(keep, m):
    """The rows of kept channels `keep` when each channel has m consecutive rows."""
    return (np.asarray(keep)[:, None] * m + np.arange(m)).ravel()


def _narrower(layer, filters, input_shape, bias, **overrides):
    """A built copy of the convolution `layer` with `filters` outputs and `bias` (or none)."""
    new = clone_layer(layer, filters=filters, use_bias=bias is not None, **overrides)
    new.build(tuple(input_shape))
    if bias is not None:
        new.bias.assign(bias)
    return new


def _group_width(layer):
    """Input channels per group of a convolution (its kernel's input rows)."""
    kernel = layer.eigenvectors if hasattr(layer, "eigenvalues_in") else layer.kernel
    return kernel.shape[-2]


def _local_rows(layer, keep_in):
    """The kernel rows that the kept input channels `keep_in` keep: the channels
    themselves, or with groups their positions in a group (the same in every group, as
    the groups' ties make them)."""
    groups = getattr(layer, "groups", 1)
    if groups == 1:
        return keep_in
    local = np.asarray(keep_in)[np.asarray(keep_in) < _group_width(layer)]
    if len(keep_in) != groups * len(local):
        raise ValueError(f"Layer '{layer.name}' would keep different channels in its {groups} groups.")
    return local


class ConvolutionRule(Produce):
    """Conv1D/2D/3D. Ungrouped: a producer; depthwise-grouped (`groups` equal to the
    input channels): channel by channel; otherwise opaque."""

    spatial = True

    def _multiplier(self, call, graph):
        """m outputs per channel for a depthwise-grouped call, else None."""
        layer = call.layer
        groups = getattr(layer, "groups", 1)
        if groups > 1 and groups == _in_channels(call, graph):
            return layer.filters // groups
        return None

    def produces(self, layer):
        groups = getattr(layer, "groups", 1)
        return groups == 1 or _group_width(layer) > 1

    def ties(self, call, graph):
        layer = call.layer
        groups = getattr(layer, "groups", 1)
        if groups == 1 or not self.produces(layer):
            return [], []
        width, outputs = _group_width(layer), layer.filters // groups
        return ([np.arange(j, width * groups, width) for j in range(width)],
                [np.arange(o, layer.filters, outputs) for o in range(outputs)])

    def width(self, layer):
        return layer.filters

    def flow(self, call, graph, first):
        reason = _layout_reason(call, graph, first)
        if reason:
            return OPAQUE, reason
        groups = getattr(call.layer, "groups", 1)
        m = self._multiplier(call, graph)
        if m is None:
            return PRODUCE, None
        return (PER_FEATURE, None) if m == 1 else (RELAY, np.repeat(np.arange(groups), m))

    def output_first(self, call, graph, first):
        return data_format_first(call.layer)

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        if not self.produces(layer):  # depthwise-grouped: keep_in are the kept groups
            outputs = _multiplied(keep_in, layer.filters // layer.groups)
            bias = numpy(layer.bias)[outputs] if layer.use_bias else None
            new = _narrower(layer, len(outputs), input_shape, bias, groups=len(keep_in))
            new.kernel.assign(numpy(layer.kernel)[..., outputs])
            return new
        new = _narrower(layer, len(keep_out), input_shape, bias)
        new.kernel.assign(numpy(layer.kernel)[..., _local_rows(layer, keep_in), :][..., keep_out])
        return new

    def multiply_adds(self, call, graph):
        layer = call.layer
        taps = int(np.prod(layer.kernel_size))
        return _positions(call, graph) * taps * (_in_channels(call, graph) // getattr(layer, "groups", 1)) * layer.filters

    def cost(self, call, graph, kept_in, kept_out):
        if self._multiplier(call, graph) is not None:  # depthwise-grouped: channel by channel
            return self.multiply_adds(call, graph) * kept_in, self.parameters(call.layer) * kept_in
        return super().cost(call, graph, kept_in, kept_out)


class SpectralConvolutionRule(ConvolutionRule):
    """SpectralConv1D/2D/3D: the kept input rows and filters of φ, eigenvalues and masks."""

    def produces(self, layer):
        return True

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer, filters=len(keep_out), use_bias=bias is not None)
        build_with_eigenvectors(new, input_shape, "zeros")
        new.eigenvectors.assign(numpy(layer.eigenvectors)[..., _local_rows(layer, keep_in), :][..., keep_out])
        return with_spectral_state(new, layer, keep_in, keep_out, bias)


class DepthwiseRule(Rule):
    """DepthwiseConv1D/2D: channel by channel (m = `depth_multiplier` outputs each)."""

    def flow(self, call, graph, first):
        reason = _layout_reason(call, graph, first)
        if reason:
            return OPAQUE, reason
        m = call.layer.depth_multiplier
        if m == 1:
            return PER_FEATURE, None
        return RELAY, np.repeat(np.arange(_in_channels(call, graph)), m)

    def output_first(self, call, graph, first):
        return data_format_first(call.layer)

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer)
        new.build(tuple(input_shape))
        new.kernel.assign(numpy(layer.kernel)[..., keep_in, :])
        if layer.use_bias:
            new.bias.assign(numpy(layer.bias)[_multiplied(keep_in, layer.depth_multiplier)])
        return new

    def multiply_adds(self, call, graph):
        layer = call.layer
        taps = int(np.prod(layer.kernel_size))
        return _positions(call, graph) * taps * _in_channels(call, graph) * layer.depth_multiplier


class SeparableRule(ConvolutionRule):
    """SeparableConv1D/2D: reads channels (through its depthwise step) and produces
    `filters`; sliced in both kernels."""

    def kernel(self, layer):
        return layer.pointwise_kernel

    def produces(self, layer):
        return True

    def flow(self, call, graph, first):
        reason = _layout_reason(call, graph, first)
        return (OPAQUE, reason) if reason else (PRODUCE, None)

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = _narrower(layer, len(keep_out), input_shape, bias)
        rows = _multiplied(keep_in, layer.depth_multiplier)
        new.depthwise_kernel.assign(numpy(layer.depthwise_kernel)[..., keep_in, :])
        new.pointwise_kernel.assign(numpy(layer.pointwise_kernel)[..., rows, :][..., keep_out])
        return new

    def multiply_adds(self, call, graph):
        layer = call.layer
        taps = int(np.prod(layer.kernel_size))
        inner = _in_channels(call, graph) * layer.depth_multiplier
        return _positions(call, graph) * inner * (taps + layer.filters)

    def parameters(self, layer):
        return int(np.prod(layer.depthwise_kernel.shape)) + super().parameters(layer)

    def cost(self, call, graph, kept_in, kept_out):
        """The depthwise step scales with `kept_in`, the pointwise one with both."""
        layer = call.layer
        depthwise = int(np.prod(layer.depthwise_kernel.shape))
        bias = layer.filters if self.bias(layer) is not None else 0
        inner = _positions(call, graph) * _in_channels(call, graph) * layer.depth_multiplier
        taps = int(np.prod(layer.kernel_size))
        return (inner * (taps * kept_in + layer.filters * kept_in * kept_out),
                depthwise * kept_in + self.kernel_size(layer) * kept_in * kept_out + bias * kept_out)


class SpectralSeparableRule(SeparableRule):
    """SpectralSeparableConv1D/2D: the depthwise kernel, φ's rows of the kept input
    channels and the kept filters, eigenvalues and masks."""

    def kernel(self, layer):
        return layer.kernel

    def slice(self, layer, keep_in, keep_out, input_shape, bias):
        new = clone_layer(layer, filters=len(keep_out), use_bias=bias is not None)
        build_with_eigenvectors(new, input_shape, "zeros")
        rows = _multiplied(keep_in, layer.depth_multiplier)
        new.depthwise_kernel.assign(numpy(layer.depthwise_kernel)[..., keep_in, :])
        new.eigenvectors.assign(numpy(layer.eigenvectors)[..., rows, :][..., keep_out])
        return with_spectral_state(new, layer, keep_in, keep_out, bias)


for _conv in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register_rule(_conv, ConvolutionRule())
register_rule(_SpectralConv, SpectralConvolutionRule())
for _conv in (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D):
    register_rule(_conv, DepthwiseRule())
for _conv in (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D):
    register_rule(_conv, SeparableRule())
register_rule(_SpectralSeparableConv, SpectralSeparableRule())
