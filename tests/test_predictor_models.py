"""The predictor interface: shapes, targets and weights, reproducibility, graphs, checkpoints."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aligned.data import simulate
from aligned.errors import InputError
from aligned.knowledge_base import KnowledgeBase
from aligned.predictor import (
    GNNPredictor,
    MLPPredictor,
    NotFittedError,
    Predictor,
    TrainingSet,
    load_predictor,
    macro_f1,
    make_predictor,
)
from aligned.predictor.arrays import one_hot
from aligned.predictor.training import class_weights

FAST = {"epochs": 4, "batch_size": 8, "patience": 4}


@pytest.fixture(scope="module")
def sim():
    return simulate(n_genes=60, corruption=0.3, seed=0)


def small(kind: str, sim, seed: int = 0, **training):
    """A small, quiet, CPU predictor of ``kind`` over the simulation's genes."""
    preset = {"model": {"kind": kind, "hidden": 16}, "training": {**FAST, **training}}
    return make_predictor(
        preset, sim.data.genes, kb=sim.kb_corrupted, device="cpu", seed=seed, quiet=True
    )


@pytest.fixture(scope="module", params=["mlp", "gnn"])
def fitted(request, sim):
    return small(request.param, sim).fit(sim.data.train, sim.data.validation)


# ---- the interface -----------------------------------------------------------------------


def test_predictions_have_the_documented_shapes_and_types(fitted, sim):
    inputs = sim.data.test_inputs()
    proba = fitted.predict_proba(inputs)
    labels = fitted.predict(inputs)
    lfc = fitted.predict_lfc(inputs)
    n, g = len(inputs), len(sim.data.genes)
    assert proba.shape == (n, g, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=2), 1.0, rtol=1e-5)
    assert labels.dtype == np.int8 and set(np.unique(labels)) <= {-1, 0, 1}
    np.testing.assert_array_equal(labels, proba.argmax(axis=2) - 1)
    assert lfc.shape == (n, g) and lfc.dtype == np.float32


def test_every_form_of_x_gives_the_same_prediction(fitted, sim):
    data = sim.data.validation
    matrix = sp.csr_matrix(data.perturbation_matrix(fitted.input_genes))
    expected = fitted.predict_proba(data)
    np.testing.assert_array_equal(fitted.predict_proba(data.perturbations), expected)
    np.testing.assert_array_equal(fitted.predict_proba(matrix), expected)
    np.testing.assert_array_equal(fitted.predict_proba(matrix.toarray()), expected)


def test_fit_records_history(fitted):
    history = fitted.history_
    assert 1 <= len(history.loss) <= FAST["epochs"]
    assert len(history.validation_f1) == len(history.loss)
    assert history.best_f1 == max(history.validation_f1)


def test_predicting_before_fitting_is_refused(sim):
    with pytest.raises(NotFittedError):
        small("mlp", sim).predict(sim.data.validation)


def test_a_perturbed_gene_unknown_to_the_predictor_is_an_input_error(fitted):
    with pytest.raises(InputError, match="'nope'"):
        fitted.predict([{"nope": -1}])


def test_a_matrix_of_the_wrong_width_is_an_input_error(fitted):
    with pytest.raises(InputError, match="input genes"):
        fitted.predict(np.zeros((2, 3)))


def test_duplicate_genes_are_refused():
    with pytest.raises(InputError, match="more than once: 'a'"):
        MLPPredictor(["a", "b", "a"], device="cpu")


def test_output_genes_in_another_order_are_reindexed(sim):
    genes = sim.data.genes[::-1]
    predictor = make_predictor(
        {"model": {"kind": "mlp", "hidden": 8}, "training": FAST}, genes, device="cpu", quiet=True
    )
    predictor.fit(sim.data.train)
    assert predictor.predict(sim.data.validation).shape == (len(sim.data.validation), len(genes))


# ---- targets and weights -----------------------------------------------------------------


def test_entries_with_zero_weight_have_no_influence(sim):
    train = sim.data.train
    weight = np.ones(len(train), dtype=np.float32)
    weight[::2] = 0.0
    flipped = np.asarray(train.labels).copy()
    flipped[::2] = -flipped[::2]
    first = small("mlp", sim).fit(train, sample_weight=weight)
    second = small("mlp", sim).fit(train, sample_weight=weight, targets=flipped)
    np.testing.assert_array_equal(first.predict_proba(train), second.predict_proba(train))


def test_per_condition_weights_equal_their_per_entry_broadcast(sim):
    train = sim.data.train
    weight = np.linspace(0.2, 1.0, len(train)).astype(np.float32)
    per_entry = np.repeat(weight[:, None], len(train.genes), axis=1)
    first = small("mlp", sim).fit(train, sample_weight=weight)
    second = small("mlp", sim).fit(train, sample_weight=per_entry)
    np.testing.assert_array_equal(first.predict_proba(train), second.predict_proba(train))


def test_one_hot_soft_targets_train_like_hard_labels(sim):
    train = sim.data.train
    hard = small("mlp", sim).fit(train)
    soft = small("mlp", sim).fit(train, targets=one_hot(train.labels))
    np.testing.assert_allclose(soft.predict_proba(train), hard.predict_proba(train), atol=1e-5)


def test_observed_data_and_pseudo_labels_train_together(sim):
    genes = sim.data.genes
    predictor = small("gnn", sim)
    unmeasured = [{gene: -1} for gene in genes[:10]]
    pseudo = TrainingSet(
        x=predictor.encode(unmeasured),
        targets=np.full((10, len(genes), 3), 1 / 3, dtype=np.float32),
        weight=np.full((10, len(genes)), 0.5, dtype=np.float32),
    )
    both = TrainingSet.concat([predictor.training_set(sim.data.train), pseudo])
    assert len(both) == len(sim.data.train) + 10
    predictor.fit(both, sim.data.validation)
    assert predictor.predict(unmeasured).shape == (10, len(genes))


def test_concat_mixes_observed_labels_and_soft_pseudo_labels():
    observed = TrainingSet(
        x=sp.csr_matrix(np.array([[-1.0, 0.0]])),
        targets=np.array([[0, 1]], dtype=np.int8),
        weight=np.ones((1, 2), dtype=np.float32),
        lfc=np.array([[0.1, 2.0]], dtype=np.float32),
    )
    pseudo = TrainingSet(
        x=sp.csr_matrix(np.array([[0.0, -1.0]])),
        targets=np.full((1, 2, 3), 1 / 3, dtype=np.float32),
        weight=np.full((1, 2), 0.5, dtype=np.float32),
    )
    both = TrainingSet.concat([observed, pseudo])
    assert both.soft and both.targets.shape == (2, 2, 3)
    np.testing.assert_array_equal(both.targets[0], one_hot(np.array([0, 1])))
    assert np.isnan(both.lfc[1]).all()
    np.testing.assert_array_equal(both.lfc_weight(), [[1, 1], [0, 0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": -np.ones((1, 2))}, "non-negative"),
        ({"weight": np.ones((1, 3))}, "weight has shape"),
        ({"targets": np.array([[2, 0]])}, "labels must lie in"),
        ({"targets": np.zeros((1, 2, 4))}, "targets must be labels"),
    ],
)
def test_malformed_training_sets_are_input_errors(kwargs, message):
    arrays = {"x": np.array([[-1.0, 0.0]]), "targets": np.zeros((1, 2)), "weight": np.ones((1, 2))}
    with pytest.raises(InputError, match=message):
        TrainingSet(**{**arrays, **kwargs})


def test_sample_weight_of_the_wrong_shape_is_an_input_error(sim):
    with pytest.raises(InputError, match="sample_weight has shape"):
        small("mlp", sim).fit(sim.data.train, sample_weight=np.ones(3))


def test_balanced_class_weights_equalise_the_classes():
    labels = np.array([[0, 0, 0, 0, 0, 0, 1, 1, -1]], dtype=np.int8)
    train = TrainingSet(np.zeros((1, 1)), labels, np.ones(labels.shape))
    weights = class_weights(train, "balanced")
    counts = np.array([1, 6, 2])
    assert np.allclose(weights * counts, (weights * counts)[0])
    assert weights.mean() == pytest.approx(1.0)
    assert np.array_equal(class_weights(train, "none"), np.ones(3))


def test_macro_f1_averages_the_classes_present():
    truth = np.array([1, 0, -1, 0])
    assert macro_f1(truth, truth) == 1.0
    assert macro_f1(truth, np.array([1, 0, 0, 0])) == pytest.approx(0.6)
    assert macro_f1(truth, np.zeros(4), mask=np.array([0, 1, 0, 1], bool)) == 1.0


# ---- reproducibility and progress ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "gnn"])
def test_cpu_fits_with_one_seed_are_identical(sim, kind):
    data = sim.data
    first = small(kind, sim, seed=5).fit(data.train, data.validation)
    second = small(kind, sim, seed=5).fit(data.train, data.validation)
    other = small(kind, sim, seed=6).fit(data.train, data.validation)
    np.testing.assert_array_equal(
        first.predict_proba(data.validation), second.predict_proba(data.validation)
    )
    assert not np.array_equal(
        first.predict_proba(data.validation), other.predict_proba(data.validation)
    )


def test_fitting_leaves_the_callers_random_state_alone(sim):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small("mlp", sim).fit(sim.data.train)
    assert torch.equal(torch.rand(3), expected)


def test_the_progress_bar_shows_epochs_loss_and_f1_unless_quiet(sim, capsys):
    small("mlp", sim).fit(sim.data.train, sim.data.validation)
    assert capsys.readouterr().out == ""
    loud = small("mlp", sim)
    loud.quiet = False
    loud.fit(sim.data.train, sim.data.validation)
    shown = capsys.readouterr().out
    assert "mlp fit" in shown and "loss" in shown and "val F1" in shown


# ---- the GNN's graph -----------------------------------------------------------------------


def test_the_gnn_message_passing_is_sparse(sim):
    gnn = small("gnn", sim).fit(sim.data.train)
    nodes = len(gnn.graph.genes)
    adjacency = gnn.network.adjacency()
    assert all(matrix.is_sparse and matrix.shape == (nodes, nodes) for matrix in adjacency)
    assert sum(matrix._nnz() for matrix in adjacency) == len(sim.kb_corrupted)
    for name, tensor in [*gnn.network.named_parameters(), *gnn.network.named_buffers()]:
        assert tensor.numel() < nodes * nodes or tensor.is_sparse, name


def test_edges_are_split_by_sign_and_normalised_by_in_degree():
    kb = KnowledgeBase.from_edges([("a", "c", 1), ("b", "c", -1), ("c", "a", 0), ("a", "b", 1)])
    gnn = GNNPredictor(["a", "b", "c"], kb=kb, device="cpu")
    activation, repression, unknown = (m.to_dense() for m in gnn.graph.adjacency("mean"))
    # row = target, column = source; c has two regulators, so each message counts one half
    assert activation[2, 0] == 0.5 and activation[1, 0] == 1.0 and activation.sum() == 1.5
    assert repression[2, 1] == 0.5 and repression.sum() == 0.5
    assert unknown[0, 2] == 1.0 and unknown.sum() == 1.0


def test_a_gain_is_the_mirror_of_a_loss_in_the_propagated_signal(sim):
    gnn = small("gnn", sim).fit(sim.data.train)
    gene = sim.data.genes[0]
    captured = []
    hook = gnn.network.propagation[-1].register_forward_hook(lambda m, i, out: captured.append(out))
    gnn.predict([{gene: -1}, {gene: 1}, {}])
    hook.remove()
    loss, gain, control = captured[0].unbind(dim=1)
    torch.testing.assert_close(gain, -loss)
    assert torch.count_nonzero(control) == 0


def test_kb_genes_that_are_not_measured_become_hidden_nodes():
    kb = KnowledgeBase.from_edges([("tf", "a", 1), ("a", "b", -1), ("b", "hub", 0)])
    gnn = GNNPredictor(["a", "b"], kb=kb, device="cpu")
    assert gnn.graph.genes[:2] == ["a", "b"]
    assert set(gnn.graph.genes) == {"a", "b", "tf", "hub"}
    assert gnn.input_genes == ["a", "b", "tf", "hub"]  # an unmeasured regulator can be perturbed


def test_set_graph_swaps_the_graph_and_keeps_the_weights(sim):
    data = sim.data
    gnn = small("gnn", sim).fit(data.train)
    weights = {name: value.clone() for name, value in gnn.network.state_dict().items()}
    before = gnn.predict_proba(data.validation)
    gnn.set_graph(KnowledgeBase.from_edges([], genes=data.genes))
    assert sum(matrix._nnz() for matrix in gnn.network.adjacency()) == 0
    assert not np.array_equal(gnn.predict_proba(data.validation), before)
    for name, value in gnn.network.state_dict().items():
        assert torch.equal(value, weights[name]), name
    gnn.set_graph(sim.kb_true)
    gnn.fit(data.train)
    assert sum(matrix._nnz() for matrix in gnn.network.adjacency()) == len(sim.kb_true)


def test_a_revised_kb_with_new_hidden_genes_can_be_swapped_in():
    kb = KnowledgeBase.from_edges([("tf", "a", 1), ("x", "b", -1)])
    gnn = GNNPredictor(["a", "b"], kb=kb, input_genes=["a", "b"], device="cpu", quiet=True)
    gnn.network = gnn._new_network()
    gnn.set_graph(KnowledgeBase.from_edges([("y", "a", 1), ("a", "y", -1), ("tf", "b", 1)]))
    assert gnn.graph.genes == ["a", "b", "y", "tf"]
    assert gnn.network.adjacency()[0].shape == (4, 4)
    assert gnn.predict([{"a": -1}]).shape == (1, 2)


def test_a_gnn_without_a_graph_refuses_to_fit(sim):
    gnn = GNNPredictor(sim.data.genes, device="cpu", quiet=True)
    with pytest.raises(InputError, match="no graph"):
        gnn.fit(sim.data.train)


# ---- checkpoints ---------------------------------------------------------------------------


def test_a_saved_and_loaded_checkpoint_predicts_identically(fitted, sim, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = load_predictor(path, device="cpu")
    inputs = sim.data.test_inputs()
    assert type(loaded) is type(fitted)
    assert (loaded.genes, loaded.input_genes) == (fitted.genes, fitted.input_genes)
    assert (loaded.model, loaded.training) == (fitted.model, fitted.training)
    np.testing.assert_array_equal(loaded.predict_proba(inputs), fitted.predict_proba(inputs))
    np.testing.assert_array_equal(loaded.predict_lfc(inputs), fitted.predict_lfc(inputs))


def test_saving_is_atomic(fitted, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    fitted.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_loading_a_checkpoint_as_the_wrong_model_is_refused(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    other = GNNPredictor if isinstance(fitted, MLPPredictor) else MLPPredictor
    with pytest.raises(InputError, match=f"holds a '{fitted.kind}' model"):
        other.load(path)
    assert isinstance(Predictor.load(path, device="cpu"), type(fitted))


def test_loading_something_else_is_an_input_error(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a predictor checkpoint"):
        load_predictor(junk)
    with pytest.raises(InputError, match="no such checkpoint"):
        load_predictor(tmp_path / "absent.pt")


@pytest.mark.parametrize("kind", ["mlp", "gnn"])
def test_the_mixed_precision_path_trains(sim, kind, monkeypatch):
    # CUDA autocast cannot run here; CPU bf16 autocast walks the same code (the sparse
    # products must leave autocast, the loss must be computed in float32)
    monkeypatch.setattr("aligned.predictor.training.amp_dtype", lambda device: torch.bfloat16)
    predictor = small(kind, sim).fit(sim.data.train, sim.data.validation)
    proba = predictor.predict_proba(sim.data.validation)
    assert proba.dtype == np.float32 and np.isfinite(proba).all()
    assert np.isfinite(predictor.history_.loss).all()


def test_a_validation_set_with_nothing_scored_is_ignored(sim):
    data = sim.data
    nothing = np.zeros((len(data.validation), len(data.genes)), dtype=np.float32)
    unscored = TrainingSet(data.validation.perturbation_matrix(), data.validation.labels, nothing)
    predictor = small("mlp", sim).fit(data.train, unscored)
    assert predictor.history_.validation_f1 == []
    assert len(predictor.history_.loss) == FAST["epochs"]
