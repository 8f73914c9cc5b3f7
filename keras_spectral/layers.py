"""`SpectralDense`: a fully connected layer trained in reciprocal space."""

import math
import warnings

import keras
import numpy as np
from keras import activations, constraints, initializers, ops, regularizers

from keras_spectral import eigenvectors as eigenvector_modes
from keras_spectral.eigenvectors import _constant
from keras_spectral.validation import check_bool, check_choice, check_positive_int, is_int
from keras_spectral.weight_sparsity import check_sparsity, magnitude_mask

# Default initializers per eigenvector mode, chosen by experiment (docs/initialization.md).
# Eigenvalues carry training (φ fixed, or `svd`): φ of unit scale and small eigenvalues, so the eigenvalues,
# which Adam moves by about the learning rate per step, are of the size of ordinary
# weights. φ (or a factor of it) trained: Adam moves each φ entry by about the learning
# rate, i.e. the kernel by lr · |λ_in − λ_out|; eigenvalues of unit scale make that about
# lr, as for a Dense kernel, and φ is scaled so the kernel starts at Glorot's variance
# (Var φ · Var(λ_in − λ_out) = 1.5 · 2 / (fan_in + fan_out) · 2/3).
_SMALL_EIGENVALUES = {"class_name": "RandomUniform", "config": {"minval": -0.02, "maxval": 0.02}}
_UNIT_EIGENVALUES = {"class_name": "RandomUniform", "config": {"minval": -1.0, "maxval": 1.0}}
_UNIT_EIGENVECTORS = {"class_name": "RandomNormal", "config": {"stddev": 1.0}}
_GLOROT_KERNEL_EIGENVECTORS = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.5, "mode": "fan_avg", "distribution": "untruncated_normal"},
}


# Modes in which the eigenvalues carry training: φ frozen, or only its k singular values
# trained (`svd`; at Adam 1e-3 the unit-scale eigenvalues learn too slowly there).
_EIGENVALUES_CARRY_TRAINING = ("frozen", "svd")


def default_initializers(eigenvectors):
    """The default `(eigenvalues, eigenvectors)` initializer configs of a mode."""
    if eigenvectors in _EIGENVALUES_CARRY_TRAINING:
        return _SMALL_EIGENVALUES, _UNIT_EIGENVECTORS
    return _UNIT_EIGENVALUES, _GLOROT_KERNEL_EIGENVECTORS


def default_basis(eigenvectors):
    """The default `eigenvector_basis` of a mode: Kronecker-structured bases where the
    mode has fixed bases (as accurate as dense ones in the grid, and cheaper)."""
    return "kronecker" if eigenvector_modes.kronecker_by_default(eigenvectors) else "dense"


WEIGHT_GROUPS = ("eigenvalues_in", "eigenvalues_out", "eigenvectors", "bias")


def set_weight_options(layer, eigenvectors, options):
    """Set `<group>_initializer`, `_regularizer` and `_constraint` on `layer` for every
    weight group from `options` (the constructor's arguments, its `locals()`), with the
    defaults of mode `eigenvectors` (shared by the spectral layers)."""
    default_eigenvalues, default_eigenvectors = default_initializers(eigenvectors)
    defaults = {"eigenvalues_in": default_eigenvalues, "eigenvalues_out": default_eigenvalues,
                "eigenvectors": default_eigenvectors, "bias": "zeros"}
    for group in WEIGHT_GROUPS:
        initializer = options[f"{group}_initializer"]
        setattr(layer, f"{group}_initializer", initializers.get(defaults[group] if initializer is None else initializer))
        setattr(layer, f"{group}_regularizer", regularizers.get(options[f"{group}_regularizer"]))
        setattr(layer, f"{group}_constraint", constraints.get(options[f"{group}_constraint"]))


def weight_options_config(layer):
    """The `get_config` entries of `set_weight_options`."""
    config = {}
    for group in WEIGHT_GROUPS:
        config[f"{group}_initializer"] = initializers.serialize(getattr(layer, f"{group}_initializer"))
        config[f"{group}_regularizer"] = regularizers.serialize(getattr(layer, f"{group}_regularizer"))
        config[f"{group}_constraint"] = constraints.serialize(getattr(layer, f"{group}_constraint"))
    return config


@keras.saving.register_keras_serializable(package="keras_spectral")
class SpectralDense(keras.layers.Layer):
    """Densely connected layer whose weights are set by a transfer operator's spectrum.

    Between `n_in` input and `units` output nodes, the operator `A = Φ Λ Φ⁻¹` with
    `Φ = [[I, 0], [φ, I]]` and `Λ = diag(λ_in, λ_out)` has the off-diagonal block
    `w_ij = (λ_in_j − λ_out_i) φ_ij`. The layer computes
    `output = activation(dot(input, kernel) + bias)` with the direct-space kernel

        kernel = φᵀ ⊙ (eigenvalues_in[:, None] − eigenvalues_out[None, :])

    so `eigenvalues_in` (one per input node) enhances or silences input nodes and
    `eigenvalues_out` (one per output node) sets each receiving node's excitability.
    Training only the eigenvalues gives `n_in + units` parameters instead of
    `n_in * units` (Chicchi et al., Phys. Rev. E 104, 054312, 2021). Freezing
    `eigenvalues_in` (`train_eigenvalues_in=False`) gives the single-set method of
    Giambagli et al., Nat. Commun. 12, 1330 (2021).

    Args:
        units: Positive integer, number of output nodes.
        activation: Activation function; `None` means linear.
        use_bias: Whether the layer adds a bias vector.
        eigenvectors: How the eigenvector block φ is held:
            `"frozen"` (random, not trained; the default), `"trainable"` (trained in
            full), `"svd"` (`φ = U diag(s) V`, U and V fixed, the `min(n_in, units)`
            scales `s` trained), `"qr"` (`φ = R Q` from the QR factorization of φᵀ,
            Q fixed with orthonormal rows, triangular R trained: `k·units − k(k−1)/2`
            parameters, `k = min(n_in, units)`), `"qr_full"` (the same with the whole
            `k × units` R trained, as in the authors' code) or `"lowrank"` (`φ = A B`,
            both trained, inner size `eigenvector_rank`).
        eigenvector_rank: Positive integer, inner size of the `"lowrank"` factors, at
            most `min(n_in, units)`. Only for `eigenvectors="lowrank"`.
        eigenvector_basis: Fixed bases of the `"svd"`, `"qr"` and `"qr_full"` modes:
            `"kronecker"` (their default: random Kronecker-structured orthogonal
            matrices, applied in `n · (a + b)` instead of `n²` multiply-adds for
            `n = a · b`, so training costs about what Dense costs; a width with no
            divisor near its square root, a prime above all, gets no speed-up and a
            warning; the trained factor
            starts from the initializer's φ) or `"dense"` (the exact factors of the
            initializer's φ). With `eigenvectors="frozen"`, `"kronecker"` makes φ
            itself structured (`φᵀ = c · Vᵀ Uᵀ` with Kronecker-structured orthonormal
            `V`, `U` and unit-variance entries; `eigenvectors_initializer` unused), so an
            eigenvalues-only layer costs `O(n^1.5)` in time and memory, not `O(n²)`;
            its default stays `"dense"` (the stored random φ of the papers).
        eigenvector_seed: Non-negative integer, `"frozen"` mode only: draw φ (uniform, unit
            variance) from the raw bits of NumPy's PCG64 generator seeded with it,
            identically on every platform and backend, and do not save φ (a saved eigenvalues-only layer then holds
            O(n_in + units) numbers). `eigenvectors_initializer` is not used.
        kernel_sparsity: `None` or a fraction in [0, 1): the direct-space kernel entries
            smallest in magnitude, this fraction of them, are zeroed in every forward
            pass (the weight-percentile rule of Chicchi et al., 2021).
        train_eigenvalues_in: Whether `eigenvalues_in` is trained.
        train_eigenvalues_out: Whether `eigenvalues_out` is trained.
        eigenvalues_in_initializer, eigenvalues_out_initializer: Initializers for the
            eigenvalues. `None` (default) takes the mode's default: `U(−0.02, 0.02)` with
            φ frozen or `"svd"`, `U(−1, 1)` where φ or a factor of it trains (see
            `default_initializers`).
        eigenvectors_initializer: Initializer for φᵀ (shape `(n_in, units)`); the
            decomposed modes factor the matrix it draws. `None` (default): `N(0, 1)` with
            φ frozen or `"svd"`; where φ or a factor of it trains, `VarianceScaling(1.5, "fan_avg")`, so the kernel
            starts at Glorot's variance and a training step moves it about as much as a
            Dense kernel at the same learning rate (docs/initialization.md).
        bias_initializer: Initializer for the bias vector.
        eigenvalues_in_regularizer, eigenvalues_out_regularizer,
        eigenvectors_regularizer, bias_regularizer: Regularizers for each group
            (`eigenvectors_regularizer` applies to the trained eigenvector factors).
        activity_regularizer: Regularizer for the output.
        eigenvalues_in_constraint, eigenvalues_out_constraint,
        eigenvectors_constraint, bias_constraint: Constraints for each group.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        N-D tensor with shape `(batch_size, ..., n_in)`, N >= 2.

    Output shape:
        N-D tensor with shape `(batch_size, ..., units)`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((784,)),
    ...     SpectralDense(500, activation="relu"),
    ...     SpectralDense(10, activation="softmax"),
    ... ])
    >>> sum(int(w.size) for w in model.trainable_weights)  # eigenvalues and biases
    2304
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        eigenvectors="frozen",
        eigenvector_rank=None,
        eigenvector_basis=None,
        eigenvector_seed=None,
        kernel_sparsity=None,
        train_eigenvalues_in=True,
        train_eigenvalues_out=True,
        eigenvalues_in_initializer=None,
        eigenvalues_out_initializer=None,
        eigenvectors_initializer=None,
        bias_initializer="zeros",
        eigenvalues_in_regularizer=None,
        eigenvalues_out_regularizer=None,
        eigenvectors_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        eigenvalues_in_constraint=None,
        eigenvalues_out_constraint=None,
        eigenvectors_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_positive_int("units", units)
        check_choice("eigenvectors", eigenvectors, eigenvector_modes.MODES)
        if eigenvector_modes.takes_rank(eigenvectors):
            if eigenvector_rank is None:
                raise ValueError(
                    f"`eigenvector_rank` is required when eigenvectors={eigenvectors!r}; "
                    "expected a positive integer. Received: eigenvector_rank=None"
                )
            check_positive_int("eigenvector_rank", eigenvector_rank)
        elif eigenvector_rank is not None:
            raise ValueError(
                f"`eigenvector_rank` applies only to eigenvectors='lowrank'. Received: "
                f"eigenvectors={eigenvectors!r}, eigenvector_rank={eigenvector_rank!r}"
            )
        if eigenvector_basis is None:
            eigenvector_basis = default_basis(eigenvectors)
        check_choice("eigenvector_basis", eigenvector_basis, eigenvector_modes.BASES)
        if eigenvector_basis != "dense" and not eigenvector_modes.takes_basis(eigenvectors):
            raise ValueError(
                "`eigenvector_basis` applies only to eigenvectors='frozen', 'svd', 'qr' or 'qr_full'. Received: "
                f"eigenvectors={eigenvectors!r}, eigenvector_basis={eigenvector_basis!r}"
            )
        if eigenvector_seed is not None:
            if not is_int(eigenvector_seed) or eigenvector_seed < 0:
                raise ValueError(
                    "Received an invalid value for `eigenvector_seed`, expected a non-negative "
                    f"integer or None. Received: eigenvector_seed={eigenvector_seed!r}"
                )
            if eigenvectors != "frozen":
                raise ValueError(
                    "`eigenvector_seed` applies only to eigenvectors='frozen'. Received: "
                    f"eigenvectors={eigenvectors!r}, eigenvector_seed={eigenvector_seed}"
                )
            if eigenvector_basis != "dense":
                raise ValueError(
                    "`eigenvector_seed` draws a stored-size φ and takes no `eigenvector_basis`; "
                    "a Kronecker basis is already small. Received: "
                    f"eigenvector_seed={eigenvector_seed}, eigenvector_basis={eigenvector_basis!r}"
                )
        check_sparsity("kernel_sparsity", kernel_sparsity)
        check_bool("use_bias", use_bias)
        check_bool("train_eigenvalues_in", train_eigenvalues_in)
        check_bool("train_eigenvalues_out", train_eigenvalues_out)

        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.eigenvector_mode = eigenvectors
        self.eigenvector_rank = eigenvector_rank
        self.eigenvector_basis = eigenvector_basis
        self.eigenvector_seed = eigenvector_seed
        self.kernel_sparsity = kernel_sparsity
        self.train_eigenvalues_in = train_eigenvalues_in
        self.train_eigenvalues_out = train_eigenvalues_out
        set_weight_options(self, eigenvectors, locals())
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True
        self._eigenvectors = None

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "Input 0 of layer SpectralDense must have rank >= 2, i.e. shape "
                f"(batch_size, ..., n_in). Received: input_shape={tuple(input_shape)}"
            )
        n_in = input_shape[-1]
        if n_in is None:
            raise ValueError(
                "The last dimension of the input to SpectralDense must be known "
                f"(it sets the number of input eigenvalues). Received: "
                f"input_shape={tuple(input_shape)}"
            )
        rank = self.eigenvector_rank
        if rank is not None and rank > min(n_in, self.units):
            raise ValueError(
                "Received an invalid value for `eigenvector_rank`, expected at most "
                f"min(n_in, units) = {min(n_in, self.units)}. Received: "
                f"eigenvector_rank={rank}"
            )
        self.eigenvalues_in = self.add_weight(
            name="eigenvalues_in",
            shape=(n_in,),
            initializer=self.eigenvalues_in_initializer,
            regularizer=self.eigenvalues_in_regularizer,
            constraint=self.eigenvalues_in_constraint,
            trainable=self.train_eigenvalues_in,
            autocast=False,  # read in float32 under mixed precision; `call` casts
        )
        self.eigenvalues_out = self.add_weight(
            name="eigenvalues_out",
            shape=(self.units,),
            initializer=self.eigenvalues_out_initializer,
            regularizer=self.eigenvalues_out_regularizer,
            constraint=self.eigenvalues_out_constraint,
            trainable=self.train_eigenvalues_out,
            autocast=False,  # read in float32 under mixed precision; `call` casts
        )
        # Node masks (1 = active, 0 = removed), set by the pruning tools in
        # `keras_spectral.pruning`; part of the saved state like any weight.
        self.eigenvalues_in_mask = self.add_weight(
            name="eigenvalues_in_mask", shape=(n_in,), initializer="ones", trainable=False
        )
        self.eigenvalues_out_mask = self.add_weight(
            name="eigenvalues_out_mask", shape=(self.units,), initializer="ones", trainable=False
        )
        self._eigenvectors = eigenvector_modes.make(
            self.eigenvector_mode,
            self,
            n_in,
            self.units,
            rank,
            seeded=self.eigenvector_seed is not None,
            basis=self.eigenvector_basis,
        )
        self._eigenvectors.build()
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n_in})
        self.built = True

    @property
    def input_dim(self):
        """Number of input nodes `n_in` (after `build`)."""
        self._check_built("input_dim")
        return self.eigenvalues_in.shape[0]

    @property
    def eigenvectors(self):
        """φᵀ in Keras kernel layout, shape `(n_in, units)` (a tensor; read-only)."""
        self._check_built("eigenvectors")
        return self._eigenvectors.matrix(self.variable_dtype)

    @property
    def kernel(self):
        """The direct-space kernel `φᵀ ⊙ (λ_in[:, None] − λ_out[None, :])`, shape
        `(n_in, units)` (a tensor; read-only: train the eigenvalues instead)."""
        self._check_built("kernel")
        return self._kernel(self.variable_dtype)

    def _check_built(self, what):
        if not self.built:
            raise ValueError(
                f"`{what}` of layer '{self.name}' is not available before the layer is "
                "built. Call the layer on an input (or `layer.build(input_shape)`) first."
            )

    def _masks(self, dtype):
        return (
            ops.cast(self.eigenvalues_in_mask, dtype),
            ops.cast(self.eigenvalues_out_mask, dtype),
        )

    def _spectral_kernel(self, dtype):
        """`φᵀ ⊙ (λ_in − λ_out)`, formed in the variables' dtype and cast once to `dtype`,
        as Dense casts its kernel: under mixed precision a product of factors (svd, qr,
        lowrank) formed in float16 / bfloat16 would carry their rounding errors too."""
        wide = self.variable_dtype
        gap = ops.cast(self.eigenvalues_in, wide)[:, None] - ops.cast(self.eigenvalues_out, wide)[None, :]
        return ops.cast(self._eigenvectors.matrix(wide) * gap, dtype)

    def _kernel(self, dtype):
        """The masked direct-space kernel: removed nodes' rows/columns are zero."""
        mask_in, mask_out = self._masks(dtype)
        node_mask = mask_in[:, None] * mask_out[None, :]  # zeroes removed nodes' rows/columns
        return self._sparsify(self._spectral_kernel(dtype) * node_mask)

    def _sparsify(self, kernel):
        if not self.kernel_sparsity:
            return kernel
        return kernel * magnitude_mask(kernel, self.kernel_sparsity)

    def call(self, inputs):
        dtype = self.compute_dtype
        mask_in, mask_out = self._masks(dtype)
        # Integer inputs (raw pixels) are cast, as Dense does; masks act on the (cheap)
        # input and output vectors, not on the kernel.
        inputs = ops.cast(inputs, dtype) * mask_in
        if self.kernel_sparsity:
            # The percentile mask needs the whole (node-masked) kernel.
            x = ops.matmul(inputs, self._kernel(dtype))
        elif self._eigenvectors.prefer_factored(_static_rows(inputs.shape)):
            # x @ (φᵀ ⊙ (λ_in − λ_out)) = (x ⊙ λ_in) @ φᵀ − (x @ φᵀ) ⊙ λ_out,
            # evaluated through the factors of φᵀ without forming it.
            lam_in = ops.cast(self.eigenvalues_in, dtype)
            lam_out = ops.cast(self.eigenvalues_out, dtype)
            both = ops.concatenate([inputs * lam_in, inputs], axis=0)
            scaled, plain = ops.split(self._eigenvectors.project(both, dtype), 2, axis=0)
            x = scaled - plain * lam_out
        else:
            x = ops.matmul(inputs, self._spectral_kernel(dtype))
        x = x * mask_out
        if self.bias is not None:
            x = ops.add(x, ops.cast(self.bias, dtype))
        if self.activation is not None:
            x = self.activation(x)
        return x

    def load_own_variables(self, store):
        variables = self._trainable_variables + self._non_trainable_variables
        saved = [tuple(store[str(i)].shape) for i in range(len(store.keys()))]
        if saved != [tuple(v.shape) for v in variables]:
            how = (
                f"regenerated from eigenvector_seed={self.eigenvector_seed} and not saved"
                if self.eigenvector_seed is not None
                else "saved with the weights (no eigenvector_seed)"
            )
            raise ValueError(
                f"Layer '{self.name}' cannot load the saved variables of shapes {saved}: it "
                f"expects {[tuple(v.shape) for v in variables]}. Its eigenvectors are {how}; "
                "load the weights into a layer configured like the one that saved them "
                "(same `eigenvectors`, `eigenvector_rank`, `eigenvector_basis` and "
                "`eigenvector_seed`)."
            )
        # Check before assigning anything, so a refusing layer is left unchanged.
        self._check_fingerprint(variables, lambda i: store[str(i)])
        super().load_own_variables(store)

    def set_weights(self, weights):
        """Set the layer's weights from a list of arrays (as `keras.layers.Layer`), after
        checking a seeded layer's eigenvector fingerprint, so that a refused list leaves
        the layer unchanged. A model's `set_weights` is checked too, layer by layer."""
        if len(weights) == len(self.weights):
            self._check_fingerprint(self.weights, lambda i: weights[i])
        super().set_weights(weights)

    def _check_fingerprint(self, variables, value_at):
        """A seeded layer: raise if the value about to go into its fingerprint variable
        (at the same position in `variables`) was made with another φ."""
        if self.eigenvector_seed is not None:
            index = next(i for i, v in enumerate(variables) if v is self._eigenvectors.fingerprint)
            self._eigenvectors.check(value_at(index))

    def compute_output_shape(self, input_shape):
        output_shape = list(input_shape)
        output_shape[-1] = self.units
        return tuple(output_shape)

    def to_dense(self):
        """An equivalent `keras.layers.Dense` holding the current direct-space kernel.

        Its outputs equal this layer's; it needs neither this package nor the spectral
        arithmetic, so it suits inspection and serving.
        """
        self._check_built("to_dense()")
        dense = keras.layers.Dense(
            self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            name=self.name,
            dtype=self.dtype_policy,
        )
        dense.build((None, self.input_dim))
        weights = [ops.convert_to_numpy(self.kernel)]
        if self.use_bias:
            weights.append(ops.convert_to_numpy(self.bias))
        dense.set_weights(weights)
        dense.trainable = self.trainable
        return dense

    @classmethod
    def from_dense(cls, layer, eigenvectors="trainable", eigenvector_rank=None, **kwargs):
        """A `SpectralDense` with the same outputs as the built `keras.layers.Dense` `layer`.

        Args:
            layer: A built `keras.layers.Dense`.
            eigenvectors: The mode of the new layer (see below for which modes are exact).
            eigenvector_rank: With `eigenvectors="lowrank"`, the rank of the approximation.
            **kwargs: Further `SpectralDense` arguments (e.g. `train_eigenvalues_in=False`,
                regularizers), except those the conversion sets.

        Returns:
            A built `SpectralDense` named like `layer`, with `λ_in = 1`, `λ_out = 0`, φᵀ from
            the kernel and the same bias, activation and dtype policy. The kernel's
            regularizer and constraint do not carry over (there is no kernel weight).

        Exact for `"trainable"`, `"frozen"`, and `"svd"` / `"qr"` / `"qr_full"` (dense
        bases, up to float rounding); `"lowrank"` approximates, with a warning giving the
        relative error; Kronecker bases and seeded φ are refused.

        Example:

        >>> dense = keras.layers.Dense(4)
        >>> dense.build((None, 3))
        >>> spectral = SpectralDense.from_dense(dense)
        >>> bool(np.allclose(spectral.kernel, dense.kernel))  # doctest: +SKIP
        True
        """
        if not isinstance(layer, keras.layers.Dense) or isinstance(layer, SpectralDense):
            raise TypeError(
                f"Received an invalid value for `layer`, expected a keras.layers.Dense. Received: layer={layer!r}"
            )
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' is not built, so it has no kernel to convert yet.")
        check_choice("eigenvectors", eigenvectors, eigenvector_modes.MODES)
        if getattr(layer, "quantization_mode", None):
            raise ValueError(
                f"Layer '{layer.name}' is quantized (quantization_mode={layer.quantization_mode!r}); "
                "only float Dense layers can be converted."
            )
        fixed = ("units", "activation", "use_bias", "eigenvectors", "eigenvector_basis", "eigenvector_seed",
                 "name", "dtype")
        clash = sorted(set(kwargs) & set(fixed))
        if clash:
            raise ValueError(
                f"`from_dense` sets {', '.join(f'`{k}`' for k in clash)} from the Dense layer. "
                f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in clash)}"
            )
        kernel = np.asarray(ops.convert_to_numpy(layer.kernel), dtype="float64")
        n_in, units = kernel.shape
        if eigenvector_modes.takes_rank(eigenvectors) and eigenvector_rank is None:
            eigenvector_rank = min(n_in, units)
        spectral = cls(
            units,
            activation=layer.activation,
            use_bias=layer.use_bias,
            eigenvectors=eigenvectors,
            eigenvector_rank=eigenvector_rank,
            eigenvector_basis="dense",
            eigenvalues_in_initializer=kwargs.pop("eigenvalues_in_initializer", None),
            eigenvalues_out_initializer=kwargs.pop("eigenvalues_out_initializer", None),
            activity_regularizer=kwargs.pop("activity_regularizer", layer.activity_regularizer),
            name=layer.name,
            dtype=layer.dtype_policy,
            **kwargs,
        )
        if layer.use_bias:
            for attribute in ("bias_initializer", "bias_regularizer", "bias_constraint"):
                if attribute not in kwargs:
                    setattr(spectral, attribute, getattr(layer, attribute))
        chosen = spectral.eigenvectors_initializer
        spectral.eigenvectors_initializer = _constant(kernel)  # the decomposed modes factor W
        spectral.build((None, n_in))
        spectral.eigenvectors_initializer = chosen
        spectral.eigenvalues_in.assign(np.ones(n_in, dtype="float32"))
        spectral.eigenvalues_out.assign(np.zeros(units, dtype="float32"))
        if eigenvectors == "lowrank":
            u, s, vt = np.linalg.svd(kernel, full_matrices=False)
            root = np.sqrt(s[:eigenvector_rank])
            spectral._eigenvectors.factor_in.assign(u[:, :eigenvector_rank] * root)
            spectral._eigenvectors.factor_out.assign(root[:, None] * vt[:eigenvector_rank])
            error = np.linalg.norm(s[eigenvector_rank:]) / max(np.linalg.norm(s), 1e-30)
            if error > 1e-6:
                warnings.warn(
                    f"Layer '{layer.name}': eigenvectors='lowrank' with eigenvector_rank="
                    f"{eigenvector_rank} approximates its kernel; relative (Frobenius) error "
                    f"{error:.3g}.",
                    stacklevel=2,
                )
        if layer.use_bias:
            spectral.bias.assign(ops.convert_to_numpy(layer.bias))
        spectral.trainable = layer.trainable
        return spectral

    def get_config(self):
        base_config = super().get_config()
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "eigenvectors": self.eigenvector_mode,
            "eigenvector_rank": self.eigenvector_rank,
            "eigenvector_basis": self.eigenvector_basis,
            "eigenvector_seed": self.eigenvector_seed,
            "kernel_sparsity": self.kernel_sparsity,
            "train_eigenvalues_in": self.train_eigenvalues_in,
            "train_eigenvalues_out": self.train_eigenvalues_out,
        }
        config.update(weight_options_config(self))
        return {**base_config, **config}


def _static_rows(shape):
    """Number of rows the last-axis matmul sees, or None if not known statically."""
    leading = shape[:-1]
    # None (TF) or a symbolic dimension (JAX export) means: not known statically.
    if not all(isinstance(d, int) for d in leading):
        return None
    return math.prod(leading)
