"""KnowledgeBase: reading, writing, bad input, diff, networkx and tensor deduction."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from aligned import KnowledgeBase
from aligned.errors import InputError

AWKWARD = ["5'UTR", "HLA-A", 'a "q" b', "back\\slash", "Ünï", "TP53", "1abc", "with space", "#hash"]


def write(path, text: str | bytes):
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


# ---- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, signs",
    [
        ("+", [1]),
        ("-", [-1]),
        ("?", [0]),
        ("+-", [1, -1]),
        ("1", [1]),
        ("-1", [-1]),
        ("0", [0]),
        ("Activation", [1]),
        ("REPRESSION", [-1]),
        ("unknown", [0]),
        ("dual", [1, -1]),
    ],
)
def test_every_sign_token_is_read(tmp_path, token, signs):
    kb = KnowledgeBase.read(write(tmp_path / "kb.tsv", f"source\ttarget\tsign\na\tb\t{token}\n"))
    assert sorted(kb.edges["sign"].tolist()) == sorted(signs)


def test_csv_with_columns_in_any_order_and_case(tmp_path):
    kb = KnowledgeBase.read(write(tmp_path / "kb.csv", "Sign,Target,Source\n-,b,a\n"))
    assert kb.edge_tuples() == [("a", "b", -1)]


def test_extra_columns_are_kept_and_written_back(tmp_path):
    path = write(
        tmp_path / "kb.tsv", "source\ttarget\tsign\tEvidence\tref\na\tb\t+-\tChIP\tPMID:1\n"
    )
    kb = KnowledgeBase.read(path)
    assert list(kb.edges.columns) == ["source", "target", "sign", "Evidence", "ref"]
    assert kb.edges["Evidence"].tolist() == ["ChIP", "ChIP"]
    kb.write(tmp_path / "out.tsv")
    assert KnowledgeBase.read(tmp_path / "out.tsv") == kb


def test_duplicate_edges_collapse_and_keep_distinct_evidence(tmp_path):
    table = "source\ttarget\tsign\tev\na\tb\t+\tx\na\tb\t+\ty\na\tb\t+\tx\n"
    path = write(tmp_path / "kb.tsv", table)
    kb = KnowledgeBase.read(path)
    assert len(kb) == 1
    assert kb.edges["ev"].tolist() == ["x; y"]


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = write(tmp_path / "kb.tsv", "# a toy KB\n\nsource\ttarget\tsign\n# note\na\tb\t+\n\n")
    assert KnowledgeBase.read(path).edge_tuples() == [("a", "b", 1)]


@pytest.mark.parametrize(
    "content, line, problem",
    [
        ("source\ttarget\nA\tB\n", 1, "missing column(s) sign"),
        ("source\ttarget\tsign\na\tb\t+\nc\td\tup\n", 3, "unknown sign 'up'"),
        ("source\ttarget\tsign\na\t\t+\n", 2, "empty gene name"),
        ("source\ttarget\tsign\na\tb\n", 2, "expected 3 fields, found 2"),
        ("source,target,sign\na,b,+\n", 1, "wrong delimiter"),
    ],
)
def test_bad_tables_name_file_line_and_problem(tmp_path, content, line, problem):
    path = write(tmp_path / "kb.tsv", content)
    with pytest.raises(InputError) as caught:
        KnowledgeBase.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ")
    assert problem in message
    assert "\n" not in message


def test_non_utf8_byte_is_reported_with_its_line(tmp_path):
    path = write(tmp_path / "kb.tsv", b"source\ttarget\tsign\na\tb\t+\nc\xff\td\t-\n")
    with pytest.raises(InputError, match=r"kb.tsv:3: not UTF-8 \(byte 0xff\)"):
        KnowledgeBase.read(path)


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file_is_an_error(tmp_path, content):
    with pytest.raises(InputError, match="file is empty"):
        KnowledgeBase.read(write(tmp_path / "kb.tsv", content))


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        KnowledgeBase.read(tmp_path / "absent.tsv")


# ---- writing ------------------------------------------------------------------------------


def test_awkward_gene_names_round_trip_through_tsv(tmp_path):
    edges = [(a, b, s) for a, b, s in zip(AWKWARD, AWKWARD[1:] + AWKWARD[:1], [1, -1, 0] * 3)]
    kb = KnowledgeBase.from_edges(edges + [("x", "y", 1), ("x", "y", -1)])
    kb.write(tmp_path / "kb.tsv")
    assert KnowledgeBase.read(tmp_path / "kb.tsv") == kb


def test_failed_write_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "kb.tsv"
    path.write_text("precious\n")
    kb = KnowledgeBase.from_edges([("a", "b", 1)])

    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(KnowledgeBase, "_edge_table_text", broken)
    with pytest.raises(RuntimeError):
        kb.write(path)
    assert path.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kb.tsv"]


def test_failed_read_does_not_touch_the_file(tmp_path):
    path = write(tmp_path / "kb.tsv", "source\ttarget\tsign\na\tb\tbogus\n")
    before = path.read_bytes()
    with pytest.raises(InputError):
        KnowledgeBase.read(path)
    assert path.read_bytes() == before


# ---- views, diff, networkx -----------------------------------------------------------------


def test_genes_include_isolated_ones_and_len_counts_edges():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("a", "b", -1)], genes=["z"])
    assert kb.genes == ["z", "a", "b"]
    assert len(kb) == 2


def test_diff_reports_added_removed_and_flipped_edges():
    old = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1), ("c", "d", 1)])
    new = KnowledgeBase.from_edges([("a", "b", -1), ("c", "d", 1), ("c", "d", -1), ("d", "e", 0)])
    changes = old.diff(new)
    as_rows = {
        (r.change, r.source, r.target, r.old_sign, r.new_sign)
        for r in changes.astype(object).where(changes.notna(), None).itertuples(index=False)
    }
    assert as_rows == {
        ("flipped", "a", "b", 1, -1),
        ("removed", "b", "c", -1, None),
        ("added", "c", "d", None, -1),
        ("added", "d", "e", None, 0),
    }


def test_diff_of_a_kb_with_itself_is_empty():
    kb = KnowledgeBase.from_edges([("a", "b", 1)])
    assert kb.diff(kb).empty


def test_networkx_round_trip_keeps_dual_edges_isolated_genes_and_extras():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("a", "b", -1), ("b", "a", 0)], genes=["iso"])
    graph = kb.to_networkx()
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.number_of_edges("a", "b") == 2
    back = KnowledgeBase.from_networkx(graph)
    assert sorted(back.edge_tuples()) == sorted(kb.edge_tuples())
    assert set(back.genes) == set(kb.genes)


def test_from_networkx_accepts_sign_tokens():
    graph = nx.DiGraph()
    graph.add_edge("a", "b", sign="+-", ref="x")
    kb = KnowledgeBase.from_networkx(graph)
    assert sorted(kb.edge_tuples()) == [("a", "b", -1), ("a", "b", 1)]


# ---- tensor deduction ----------------------------------------------------------------------


def statuses(kb, perturbation, k):
    frame = kb.deduce(perturbation, k=k)
    return {gene: status for gene, status in frame["status"].items() if status != "none"}


def test_signs_multiply_along_a_walk():
    kb = KnowledgeBase.from_edges([("a", "b", -1), ("b", "c", -1)])
    assert statuses(kb, {"a": -1}, 2) == {"a": "perturbed", "b": "up", "c": "down"}


def test_walks_longer_than_k_are_not_followed():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", 1), ("c", "d", 1)])
    assert statuses(kb, {"a": 1}, 2) == {"a": "perturbed", "b": "up", "c": "up"}


def test_conflicting_walks_give_label_zero():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("a", "c", -1), ("c", "b", 1)])
    frame = kb.deduce({"a": 1}, k=2)
    assert frame.loc["b", "status"] == "conflict"
    assert frame.loc["b", "label"] == 0


def test_a_negative_cycle_reaches_a_gene_with_both_signs_at_larger_k():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "b", -1)])
    assert statuses(kb, {"a": 1}, 1)["b"] == "up"
    assert statuses(kb, {"a": 1}, 2)["b"] == "conflict"


def test_dual_edge_is_a_conflict():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("a", "b", -1)])
    assert statuses(kb, {"a": -1}, 1)["b"] == "conflict"


def test_unknown_edges_mark_unsigned_only_without_a_signed_walk():
    kb = KnowledgeBase.from_edges([("a", "b", 0), ("b", "c", 1), ("a", "c", -1), ("c", "d", 0)])
    result = statuses(kb, {"a": 1}, 3)
    assert result == {"a": "perturbed", "b": "unsigned", "c": "down", "d": "unsigned"}


def test_perturbed_gene_reached_by_a_cycle_stays_perturbed():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "a", -1)])
    frame = kb.deduce({"a": 1}, k=3)
    assert frame.loc["a", "status"] == "perturbed"
    assert frame.loc["a", "label"] == 1


def test_combined_perturbation_reaches_from_both_genes():
    kb = KnowledgeBase.from_edges([("a", "c", 1), ("b", "c", 1), ("b", "d", -1)])
    assert statuses(kb, {"a": 1, "b": -1}, 1) == {
        "a": "perturbed",
        "b": "perturbed",
        "c": "conflict",
        "d": "up",
    }


def test_perturbed_gene_outside_the_kb_is_reported_as_perturbed():
    kb = KnowledgeBase.from_edges([("a", "b", 1)])
    frame = kb.deduce({"zz": -1}, k=2)
    assert frame.loc["zz", "status"] == "perturbed"
    assert (frame.drop(index="zz")["status"] == "none").all()


def test_deduce_matrix_on_another_gene_index_matches_deduce():
    kb = KnowledgeBase.from_edges([("a", "b", 1), ("b", "c", -1)])
    genes = ["c", "x", "a"]
    X = np.array([[0, 0, -1], [0, 1, 0]])
    labels, status = kb.deduce_matrix(X, k=2, genes=genes)
    assert labels.tolist() == [[1, 0, -1], [0, 1, 0]]
    assert status.tolist() == [[1, 0, 5], [0, 5, 0]]


def test_bad_k_and_bad_perturbation_are_rejected():
    kb = KnowledgeBase.from_edges([("a", "b", 1)])
    with pytest.raises(InputError, match="k must be an integer >= 1"):
        kb.deduce({"a": 1}, k=0)
    with pytest.raises(InputError, match="must be -1 .* or \\+1"):
        kb.deduce({"a": 2}, k=1)
    with pytest.raises(ValueError, match="unknown backend"):
        kb.deduce({"a": 1}, k=1, backend="magic")


def test_toy_kb_ships_with_both_signs_a_cycle_a_dual_and_an_unknown_edge():
    from aligned.resources import resource_path

    kb = KnowledgeBase.read(resource_path("knowledge", "toy.tsv"))
    signs = set(kb.edges["sign"])
    assert signs == {1, -1, 0}
    pairs = kb.edges.groupby(["source", "target"])["sign"].nunique()
    assert (pairs == 2).any(), "a dual edge"
    assert not nx.is_directed_acyclic_graph(nx.DiGraph(kb.to_networkx())), "a cycle"


def test_written_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    path = tmp_path / "kb.tsv"
    KnowledgeBase.from_edges([("a", "b", 1)]).write(path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
