"""barenet: neural networks from first principles on NumPy alone.

>>> import barenet as bn
>>> net = bn.build_mlp(hidden=(64, 32), n_outputs=5, dropout=0.2, seed=0)
>>> history = net.fit(X, y, epochs=10, validation_fraction=0.1)      # doctest: +SKIP
>>> net.save("model.npz"); net = bn.load("model.npz")                 # doctest: +SKIP
"""
__version__ = "0.1.0"

from . import activations, initializers, losses, metrics, optimizers, schedules  # noqa: E402
from .activations import (  # noqa: E402
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
    get_activation,
    log_softmax,
    sigmoid,
    softmax,
)
from .calibration import (  # noqa: E402
    calibrated_proba,
    expected_calibration_error,
    fit_temperature,
    group_matrix,
    nll,
    reliability_curve,
)
from .callbacks import (  # noqa: E402
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
    TrainingState,
)
from .datasets import load_mnist  # noqa: E402
from .gradcheck import check_gradients  # noqa: E402
from .history import History  # noqa: E402
from .initializers import get_initializer  # noqa: E402
from .layers import Dense, Dropout, Layer, register_layer  # noqa: E402
from .losses import MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, get_loss  # noqa: E402
from .metrics import accuracy, confusion_matrix, macro_f1, precision_recall_f1  # noqa: E402
from .network import Sequential, build_mlp  # noqa: E402
from .optimizers import SGD, Adam, AdamW, RMSprop, get_optimizer  # noqa: E402
from .schedules import Constant, CosineDecay, ExponentialDecay, StepDecay  # noqa: E402
from .serialization import ModelFileError, atomic_write_bytes, load, read_manifest  # noqa: E402
from .training import evaluate, fit, partial_fit, split_indices, stratified_split  # noqa: E402

__all__ = [
    "__version__",
    # modules
    "activations", "initializers", "losses", "metrics", "optimizers", "schedules",
    # layers and networks
    "Layer", "Dense", "Dropout", "register_layer", "Sequential", "build_mlp",
    "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softplus", "Softmax",
    "get_activation", "get_initializer", "softmax", "log_softmax", "sigmoid",
    # losses and optimisers
    "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "MeanSquaredError", "get_loss",
    "SGD", "RMSprop", "Adam", "AdamW", "get_optimizer",
    "Constant", "StepDecay", "ExponentialDecay", "CosineDecay",
    # training
    "fit", "partial_fit", "evaluate", "split_indices", "stratified_split", "History",
    "Callback", "TrainingState", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau",
    "LearningRateScheduler", "TerminateOnNaN", "CSVLogger",
    # metrics and calibration
    "accuracy", "confusion_matrix", "macro_f1", "precision_recall_f1",
    "fit_temperature", "group_matrix", "expected_calibration_error", "reliability_curve", "nll", "calibrated_proba",
    # checking and persistence
    "check_gradients", "load", "read_manifest", "ModelFileError", "atomic_write_bytes",
    # data
    "load_mnist",
]
