"""keras-spectral: dense layers trained in reciprocal space (eigenvalues and eigenvectors
of a transfer operator), with eigenvalue-driven structured pruning of any functional model."""

from keras_spectral.compaction import compact
from keras_spectral.conversion import spectralize
from keras_spectral.convolutional import SpectralConv1D, SpectralConv2D, SpectralConv3D
from keras_spectral.export import collapse
from keras_spectral.attention import SpectralMultiHeadAttention
from keras_spectral.budgets import BudgetError
from keras_spectral.graph import ModelCost, model_cost, multiply_adds, node_groups, register_rule, rules
from keras_spectral.embedding import SpectralEmbedding
from keras_spectral.layers import SpectralDense
from keras_spectral.learned_importance import learn_importance
from keras_spectral.normalization import MaskedLayerNormalization, MaskedRMSNormalization
from keras_spectral.callbacks import EigenvaluePruning
from keras_spectral.pruning import node_scores, node_sparsity, prune_nodes
from keras_spectral.report import PruningReport, pruning_report
from keras_spectral.relevance import input_relevance, kept_inputs, rank_inputs, remove_inputs
from keras_spectral.schedules import ConstantSparsity, PolynomialDecay
from keras_spectral.separable import SpectralSeparableConv1D, SpectralSeparableConv2D

__version__ = "0.1.0"

__all__ = [
    "SpectralDense",
    "SpectralConv1D",
    "SpectralConv2D",
    "SpectralConv3D",
    "SpectralSeparableConv1D",
    "SpectralSeparableConv2D",
    "SpectralMultiHeadAttention",
    "SpectralEmbedding",
    "MaskedLayerNormalization",
    "MaskedRMSNormalization",
    "EigenvaluePruning",
    "ConstantSparsity",
    "PolynomialDecay",
    "prune_nodes",
    "node_scores",
    "node_sparsity",
    "learn_importance",
    "compact",
    "spectralize",
    "node_groups",
    "register_rule",
    "rules",
    "multiply_adds",
    "model_cost",
    "ModelCost",
    "pruning_report",
    "PruningReport",
    "BudgetError",
    "input_relevance",
    "rank_inputs",
    "remove_inputs",
    "kept_inputs",
    "collapse",
    "__version__",
]
