"""The scikit-learn estimators: scikit-learn's own estimator checks, meta-estimators, targets, persistence."""
import pickle
import subprocess
import sys
import warnings
from unittest import SkipTest

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

import barenet
from barenet.estimator import NeuralNetClassifier, NeuralNetRegressor
from barenet.serialization import ModelFileError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
FAST = {"learning_rate": 0.01, "batch_size": 32}  # enough steps in a few epochs on a few hundred rows


def _expected_failures(estimator):
    return get_tags(estimator).expected_failed_checks


@parametrize_with_checks(
    [NeuralNetClassifier(), NeuralNetRegressor(),
     NeuralNetClassifier(dtype="float64"), NeuralNetRegressor(dtype="float64")],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    try:
        check(estimator)
    except SkipTest as exc:  # every check scikit-learn skips must be listed, with its reason, in the tags
        name = getattr(check, "func", check).__name__
        assert name in get_tags(estimator).skipped_checks, f"{name} was skipped ({exc}) but is not in skipped_checks"
        raise


@pytest.mark.parametrize("estimator", [NeuralNetClassifier(), NeuralNetRegressor()])
def test_expected_failures_are_float32_rounding_only_with_a_one_line_reason(estimator):
    expected = _expected_failures(estimator)
    assert set(expected) == {"check_methods_subset_invariance", "check_sample_weight_equivalence_on_dense_data"}
    for name, reason in expected.items():
        assert reason.strip() and "\n" not in reason and "float64 passes" in reason
    for name, reason in get_tags(estimator).skipped_checks.items():
        assert name.startswith("check_") and reason.strip() and "\n" not in reason
    assert _expected_failures(clone(estimator).set_params(dtype="float64")) == {}


def test_sample_weight_equals_repetition_in_float64_as_in_sklearn():
    rng = np.random.RandomState(42)
    X, y, w = rng.rand(15, 30), rng.randint(0, 3, size=15), rng.randint(0, 5, size=15)
    for optimizer in ("adam", "sgd"):  # sgd: the weights' scale must not act as a learning rate
        def fit(X_fit, y_fit, w=None, alpha=1e-4, optimizer=optimizer):
            net = NeuralNetClassifier((16,), optimizer=optimizer, alpha=alpha, dtype="float64", random_state=0)
            return net.fit(X_fit, y_fit, sample_weight=w).predict_proba(X)

        np.testing.assert_allclose(fit(X, y, w), fit(X.repeat(w, axis=0), y.repeat(w)), rtol=1e-9, atol=1e-12)
        # like MLPClassifier, the loss is divided by the weight sum, so only the L2 term sees the weights' scale
        np.testing.assert_allclose(fit(X, y, w, alpha=0.0), fit(X, y, 10.0 * w, alpha=0.0), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(240, 8, n_informative=5, n_classes=3, class_sep=2.0, random_state=0)
    return X, y


# ----------------------------------------------------------------------------------------------
# scikit-learn's meta-estimators
# ----------------------------------------------------------------------------------------------
def test_grid_search_over_two_hyperparameters_in_a_pipeline(blobs):
    X, y = blobs
    pipe = Pipeline([("scale", StandardScaler()), ("net", NeuralNetClassifier(max_epochs=30, random_state=0, **FAST))])
    grid = {"net__hidden_layer_sizes": [(8,), (32, 16)], "net__alpha": [1e-4, 1e-1]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert set(search.best_params_) == set(grid)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.8
    assert search.best_estimator_.named_steps["net"].n_features_in_ == X.shape[1]
    assert search.score(X, y) > 0.8


def test_cross_val_score_and_clone(blobs):
    X, y = blobs
    model = make_pipeline(StandardScaler(), NeuralNetClassifier((16,), max_epochs=30, random_state=0, **FAST))
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    fitted = NeuralNetClassifier((4,), max_epochs=2, random_state=0).fit(X, y)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params() and not hasattr(twin, "network_")


def test_similar_accuracy_to_sklearn_mlp_on_digits():
    """Same data, architecture (64 ReLU units), Adam lr 1e-3, alpha 1e-4, batch 200, 200 epochs."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    ours = make_pipeline(StandardScaler(), NeuralNetClassifier((64,), max_epochs=200, random_state=0))
    theirs = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=200, random_state=0))
    acc_ours = ours.fit(X_train, y_train).score(X_test, y_test)
    acc_theirs = theirs.fit(X_train, y_train).score(X_test, y_test)
    assert acc_theirs > 0.95 and acc_ours > 0.95
    assert abs(acc_ours - acc_theirs) <= 0.02, (acc_ours, acc_theirs)


# ----------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------
def test_string_labels_multiclass_and_binary(blobs):
    X, y = blobs
    names = np.array(["dos", "normal", "probe"], dtype=object)[y]
    clf = NeuralNetClassifier((16,), max_epochs=40, random_state=0, **FAST).fit(X, names)
    assert clf.classes_.tolist() == ["dos", "normal", "probe"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6)
    assert clf.score(X, names) > 0.85

    binary = np.where(y == 1, "attack", "benign")
    clf = NeuralNetClassifier((16,), max_epochs=40, random_state=0).fit(X, binary)
    assert clf.network_.layers[-1].units == 1  # one sigmoid output, as MLPClassifier does
    assert clf.classes_.tolist() == ["attack", "benign"] and clf.predict_proba(X).shape == (len(X), 2)
    assert set(clf.predict(X)) <= {"attack", "benign"}


def test_multilabel_classification():
    X, Y = make_multilabel_classification(200, 10, n_classes=4, random_state=0)
    clf = NeuralNetClassifier((32,), max_epochs=60, learning_rate=0.01, random_state=0).fit(X, Y)
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred == Y).mean() > 0.75


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regression_single_and_multi_output(n_targets):
    X, y = make_regression(300, 5, n_targets=n_targets, noise=0.1, random_state=0)
    y = y / y.std()
    reg = make_pipeline(StandardScaler(), NeuralNetRegressor((32,), max_epochs=150, random_state=0)).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == y.shape and pred.dtype == np.float64
    assert reg.score(X, y) > 0.9


def test_class_weight_balanced_raises_minority_recall():
    X, y = make_classification(400, 6, weights=[0.9, 0.1], class_sep=0.5, random_state=1)
    recall = {}
    for cw in (None, "balanced"):
        clf = NeuralNetClassifier((16,), max_epochs=40, class_weight=cw, random_state=0).fit(X, y)
        recall[cw] = (clf.predict(X)[y == 1] == 1).mean()
    assert recall["balanced"] > recall[None]


def test_one_class_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="1 class"):
        NeuralNetClassifier(max_epochs=1).fit(np.ones((4, 2)), ["a"] * 4)


# ----------------------------------------------------------------------------------------------
# parameters reach the network
# ----------------------------------------------------------------------------------------------
def test_parameters_configure_the_network(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16, 8), activation=["tanh", "relu"], dropout=(0.2, 0.0), init="lecun_normal",
                              optimizer="sgd", learning_rate=0.05, batch_size=32, alpha=0.01, max_epochs=3,
                              random_state=7, dtype="float64").fit(X, y)
    layers = clf.network_.layers
    assert [type(layer).__name__ for layer in layers] == ["Dense", "Tanh", "Dropout", "Dense", "ReLU", "Dense"]
    assert layers[2].rate == 0.2 and layers[0].init == "lecun_normal"
    assert layers[0].l2 == pytest.approx(0.01 / (2 * 32))  # sklearn's 0.5 * alpha * ||W||^2 / batch rows
    assert type(clf.network_.optimizer).__name__ == "SGD" and clf.network_.optimizer.learning_rate == 0.05
    assert clf.network_.seed == 7 and clf.network_.dtype == np.float64
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and clf.validation_loss_curve_ is None
    assert clf.history_ is clf.network_.history_
    # no hidden layer: softmax regression
    linear = NeuralNetClassifier((), max_epochs=50, random_state=0, **FAST).fit(X, y)
    assert len(linear.network_.layers) == 1 and linear.score(X, y) > 0.8


@pytest.mark.parametrize("params, message", [
    ({"batch_size": 0}, 'batch_size must be "auto" or a positive integer, got 0'),
    ({"batch_size": -5}, "batch_size must be"),
    ({"batch_size": 2.5}, "batch_size must be"),
    ({"alpha": -1.0}, "alpha must be a finite number >= 0, got -1.0"),
    ({"max_epochs": 0}, "max_epochs must be a positive integer"),
    ({"tol": -1e-3}, "tol must be"),
    ({"n_iter_no_change": 0}, "n_iter_no_change must be"),
    ({"early_stopping": True, "validation_fraction": 0.0}, "validation_fraction must be in \\(0, 1\\)"),
])
def test_bad_hyperparameters_are_named_at_fit(blobs, params, message):
    # before: batch_size=0 was a ZeroDivisionError and alpha=-1 blamed "Dense l2"
    X, y = blobs
    for est in (NeuralNetClassifier(**params), NeuralNetRegressor(**params)):
        with pytest.raises(ValueError, match=message):
            est.fit(X, y.astype(float) if isinstance(est, NeuralNetRegressor) else y)


def test_optimizer_instance_is_copied_not_trained_in_place(blobs):
    X, y = blobs
    opt = barenet.SGD(0.1, momentum=0.9)
    clf = NeuralNetClassifier((8,), optimizer=opt, max_epochs=2, random_state=0).fit(X, y)
    assert opt.step_count == 0 and clf.network_.optimizer is not opt
    assert clf.network_.optimizer.momentum == 0.9 and clf.network_.optimizer.step_count > 0


def test_random_state_conventions(blobs):
    X, y = blobs
    a = NeuralNetClassifier((8,), max_epochs=3, random_state=3).fit(X, y)
    b = NeuralNetClassifier((8,), max_epochs=3, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = NeuralNetClassifier((8,), max_epochs=3, random_state=np.random.RandomState(5)).fit(X, y)
    d = NeuralNetClassifier((8,), max_epochs=3, random_state=np.random.RandomState(5)).fit(X, y)
    assert c.network_.seed == d.network_.seed
    np.testing.assert_array_equal(c.predict_proba(X), d.predict_proba(X))
    e = NeuralNetClassifier((8,), max_epochs=1, random_state=None).fit(X, y)
    assert isinstance(e.network_.seed, int)  # drawn from NumPy's global RandomState, and recorded


def test_early_stopping_records_validation_curve_and_stops(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((64,), early_stopping=True, n_iter_no_change=3, tol=0.0, learning_rate=0.05,
                              max_epochs=300, random_state=0).fit(X, y)
    assert clf.history_.stop_reason == "early_stopping" and clf.n_iter_ < 300
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == len(clf.loss_curve_)


def test_convergence_warning_when_max_epochs_is_reached(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match="maximum epochs"):
        NeuralNetClassifier((8,), max_epochs=2, random_state=0).fit(X, y)


def test_dataframe_feature_names(blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = NeuralNetClassifier((8,), max_epochs=2, random_state=0).fit(df, y)
    assert clf.feature_names_in_.tolist() == list(df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)  # fitted with names, predicting without
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[df.columns[::-1]])


# ----------------------------------------------------------------------------------------------
# incremental training
# ----------------------------------------------------------------------------------------------
def test_partial_fit(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16,), random_state=0, **FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    first = y != 2  # the first chunk lacks class 2; classes= announces it
    clf.partial_fit(X[first], y[first], classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2] and clf.n_iter_ == 1
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 31 and clf.score(X, y) > 0.85
    with pytest.raises(ValueError, match="differs"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)
    reg = NeuralNetRegressor((8,), random_state=0).partial_fit(X, y.astype(float)).partial_fit(X, y.astype(float))
    assert reg.n_iter_ == 2


def test_warm_start_continues_from_the_current_weights(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16,), max_epochs=5, n_iter_no_change=1000, warm_start=True, random_state=0).fit(X, y)
    before = clf.network_
    clf.fit(X, y)
    assert clf.network_ is before and clf.n_iter_ == 10
    cold = NeuralNetClassifier((16,), max_epochs=10, n_iter_no_change=1000, random_state=0).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), cold.predict_proba(X), rtol=1e-5)  # 5 + 5 == 10 epochs


# ----------------------------------------------------------------------------------------------
# persistence: pickle (scikit-learn's path) and barenet's pickle-free file
# ----------------------------------------------------------------------------------------------
def test_pickle_round_trip_keeps_training_working(blobs):
    X, y = blobs
    clf = NeuralNetClassifier((16,), dropout=0.1, max_epochs=3, n_iter_no_change=1000, warm_start=True,
                              random_state=0).fit(X, y)
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
    params = twin.network_.layers[0].params["W"]
    assert np.shares_memory(params, twin.network_.flat_params)  # views survive unpickling, so training moves them
    W_before = params.copy()
    clf.fit(X, y)
    twin.fit(X, y)  # same weights, optimizer state and generator: bit-identical continuation
    assert not np.array_equal(params, W_before)
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))


def test_save_and_load_round_trip(tmp_path, blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    clf = NeuralNetClassifier((8, 4), activation=("tanh", "relu"), class_weight={0: 2.0, 2: 0.5}, max_epochs=5,
                              random_state=np.random.RandomState(0)).fit(df, y)
    path = tmp_path / "clf.npz"
    clf.save(path)
    loaded = NeuralNetClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(df), clf.predict_proba(df))
    assert loaded.classes_.tolist() == clf.classes_.tolist() and loaded.n_iter_ == clf.n_iter_
    assert loaded.feature_names_in_.tolist() == list(df.columns)
    params = loaded.get_params()
    assert params["hidden_layer_sizes"] == (8, 4) and params["activation"] == ("tanh", "relu")
    assert params["class_weight"] == {0: 2.0, 2: 0.5} and params["random_state"] is None
    refit = clone(loaded).set_params(random_state=0).fit(df, y)  # the restored parameters train again
    assert refit.n_iter_ == 5
    assert isinstance(barenet.load(path), barenet.Sequential)  # the file is a plain barenet model too
    with pytest.raises(ValueError, match="not a NeuralNetRegressor"):
        NeuralNetRegressor.load(path)
    plain = tmp_path / "plain.npz"
    barenet.build_mlp(4, (3,), 2, seed=0).save(plain)
    with pytest.raises(ValueError, match="plain barenet model"):
        NeuralNetClassifier.load(plain)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError):
        NeuralNetClassifier.load(path)


def test_regressor_save_load(tmp_path):
    X, y = make_regression(60, 3, n_targets=2, random_state=0)
    reg = NeuralNetRegressor((8,), max_epochs=3, random_state=0).fit(X, y)
    reg.save(tmp_path / "reg.npz")
    loaded = NeuralNetRegressor.load(tmp_path / "reg.npz")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


def test_unfitted_methods_raise_not_fitted(tmp_path):
    with pytest.raises(NotFittedError):
        NeuralNetClassifier().save(tmp_path / "x.npz")


def test_import_barenet_without_sklearn():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None  # any import of scikit-learn now fails\n"
        "import barenet\n"
        "assert 'barenet.estimator' not in sys.modules\n"
        "barenet.build_mlp(3, (4,), 2, seed=0)\n"
        "try:\n"
        "    import barenet.estimator\n"
        "except ImportError as exc:\n"
        "    assert 'barenet[sklearn]' in str(exc), exc\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_no_warning_noise_from_a_converged_fit(blobs):
    X, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NeuralNetClassifier((16,), max_epochs=500, tol=1e-2, n_iter_no_change=2, random_state=0).fit(X, y)
