"""The SWI-Prolog backend: deduction, explanation, sandboxed queries and fact reading."""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
import time

import pytest

from aligned.errors import InputError, UnsafeGoal
from aligned.reasoning.status import CONFLICT, DOWN, PERTURBED, UNSIGNED, UP
from aligned.reasoning.walk import Walk

prolog = pytest.importorskip("aligned.reasoning.prolog")
pytest.importorskip("pyswip")

SWIPL = shutil.which("swipl")
needs_swipl = pytest.mark.skipif(SWIPL is None, reason="the swipl executable is not installed")

AWKWARD = ["5'UTR", "HLA-A", 'a "q" b', "back\\slash", "Ünï", "TP53", "1abc", "with space"]


def genes_of(edges):
    return sorted({s for s, _, _ in edges} | {t for _, t, _ in edges})


def deduce_one(edges, perturbation, k, genes=None):
    genes = genes_of(edges) if genes is None else genes
    return prolog.deduce(edges, genes, [perturbation], k)[0]


def brute_force_status(edges, perturbation, k):
    """Statuses by enumerating every walk of length 1..k: exponential, for tiny graphs only."""
    signs = {}
    walks = list(perturbation.items())  # (gene, sign), sign None once a '?' edge is used
    for _ in range(k):
        walks = [
            (t, None if sign is None or e == 0 else sign * e)
            for gene, sign in walks
            for s, t, e in edges
            if s == gene
        ]
        for gene, sign in walks:
            signs.setdefault(gene, set()).add(sign)
    out = {}
    for gene, reached in signs.items():
        if 1 in reached and -1 in reached:
            out[gene] = CONFLICT
        elif 1 in reached:
            out[gene] = UP
        elif -1 in reached:
            out[gene] = DOWN
        else:
            out[gene] = UNSIGNED
    for gene in perturbation:
        out[gene] = PERTURBED
    return out


# ---- deduction ----------------------------------------------------------------------------


def test_chain_signs_multiply_along_the_walk():
    edges = [("a", "b", 1), ("b", "c", -1), ("c", "d", -1)]
    assert deduce_one(edges, {"a": -1}, 3) == {"a": PERTURBED, "b": DOWN, "c": UP, "d": DOWN}
    assert deduce_one(edges, {"a": 1}, 3) == {"a": PERTURBED, "b": UP, "c": DOWN, "d": UP}


def test_k_bounds_the_walk_length():
    edges = [("a", "b", 1), ("b", "c", 1), ("c", "d", 1)]
    assert deduce_one(edges, {"a": 1}, 2) == {"a": PERTURBED, "b": UP, "c": UP}
    assert deduce_one(edges, {"a": 1}, 1) == {"a": PERTURBED, "b": UP}


def test_odd_negative_cycle_gives_conflict_once_k_is_long_enough():
    # a -> b -| c -> b: b is reached with -1 (length 1) and +1 (length 3).
    edges = [("a", "b", 1), ("b", "c", -1), ("c", "b", 1)]
    assert deduce_one(edges, {"a": 1}, 2) == {"a": PERTURBED, "b": UP, "c": DOWN}
    assert deduce_one(edges, {"a": 1}, 3) == {"a": PERTURBED, "b": CONFLICT, "c": DOWN}
    assert deduce_one(edges, {"a": 1}, 4) == {"a": PERTURBED, "b": CONFLICT, "c": CONFLICT}


def test_negative_self_loop_makes_its_gene_conflict():
    edges = [("a", "b", 1), ("b", "b", -1)]
    assert deduce_one(edges, {"a": 1}, 1) == {"a": PERTURBED, "b": UP}
    assert deduce_one(edges, {"a": 1}, 2) == {"a": PERTURBED, "b": CONFLICT}


def test_dual_edge_gives_conflict():
    edges = [("a", "b", 1), ("a", "b", -1), ("b", "c", 1)]
    assert deduce_one(edges, {"a": -1}, 2) == {"a": PERTURBED, "b": CONFLICT, "c": CONFLICT}


def test_unknown_sign_edge_marks_unsigned_but_never_overrides_a_signed_walk():
    edges = [("a", "b", 0), ("b", "c", 1), ("a", "d", 0), ("a", "e", 1), ("e", "d", 1)]
    statuses = deduce_one(edges, {"a": -1}, 2)
    assert statuses == {"a": PERTURBED, "b": UNSIGNED, "c": UNSIGNED, "d": DOWN, "e": DOWN}


def test_unsigned_walks_respect_k_too():
    edges = [("a", "b", 0), ("b", "c", 1)]
    assert deduce_one(edges, {"a": 1}, 1) == {"a": PERTURBED, "b": UNSIGNED}


def test_perturbed_gene_reached_by_a_cycle_stays_perturbed():
    edges = [("a", "b", -1), ("b", "a", 1)]
    assert deduce_one(edges, {"a": 1}, 2) == {"a": PERTURBED, "b": DOWN}
    # a -| b -> a -| b reaches b with +1 through the perturbed gene a itself.
    assert deduce_one(edges, {"a": 1}, 3) == {"a": PERTURBED, "b": CONFLICT}


def test_combined_perturbation_merges_walks_and_passes_through_perturbed_genes():
    edges = [("a", "c", 1), ("b", "c", 1), ("b", "a", 1), ("a", "d", 1)]
    statuses = deduce_one(edges, {"a": 1, "b": -1}, 2)
    # c: +1 from a, -1 from b.  d: +1 via a, -1 via b -> a (through a perturbed gene).
    assert statuses == {"a": PERTURBED, "b": PERTURBED, "c": CONFLICT, "d": CONFLICT}


def test_isolated_and_unknown_perturbed_genes_are_reported_as_perturbed():
    edges = [("a", "b", 1)]
    results = prolog.deduce(edges, ["a", "b", "lonely"], [{"lonely": 1}, {"absent": -1}], 3)
    assert results == [{"lonely": PERTURBED}, {"absent": PERTURBED}]


def test_empty_knowledge_base_deduces_only_the_perturbed_genes():
    assert prolog.deduce([], ["x"], [{"x": -1}], 3) == [{"x": PERTURBED}]


def test_deduction_agrees_with_walk_enumeration_on_random_small_graphs():
    rng = random.Random(7)
    genes = list("abcde")
    for _ in range(25):
        edges = sorted(
            {(rng.choice(genes), rng.choice(genes), rng.choice([1, -1, 0])) for _ in range(7)}
        )
        perturbation = {g: rng.choice([1, -1]) for g in rng.sample(genes, rng.randint(1, 2))}
        k = rng.randint(1, 4)
        expected = brute_force_status(edges, perturbation, k)
        assert deduce_one(edges, perturbation, k, genes) == expected, (edges, perturbation, k)


def test_deduce_rejects_a_bad_bound_or_direction():
    with pytest.raises(ValueError, match="at least 1"):
        prolog.deduce([("a", "b", 1)], ["a", "b"], [{"a": 1}], 0)
    with pytest.raises(ValueError, match="must be -1 or \\+1"):
        prolog.deduce([("a", "b", 1)], ["a", "b"], [{"a": 2}], 2)


def test_awkward_gene_names_deduce_correctly():
    edges = [(AWKWARD[i], AWKWARD[i + 1], -1) for i in range(len(AWKWARD) - 1)]
    statuses = deduce_one(edges, {AWKWARD[0]: 1}, len(AWKWARD))
    expected = {gene: DOWN if i % 2 else UP for i, gene in enumerate(AWKWARD)}
    expected[AWKWARD[0]] = PERTURBED
    assert statuses == expected


# ---- export to plain swipl ----------------------------------------------------------------


def run_swipl(path, goal):
    result = subprocess.run(
        [SWIPL, "-q", "-g", goal, "-t", "halt", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"LANG": "C", "LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"swipl printed warnings:\n{result.stderr}"
    return result.stdout


@needs_swipl
def test_awkward_names_survive_program_text_in_real_swipl(tmp_path):
    edges = [(a, b, 1) for a, b in itertools.pairwise(AWKWARD)] + [(AWKWARD[0], AWKWARD[0], 0)]
    path = tmp_path / "kb.pl"
    path.write_text(prolog.program_text(edges, AWKWARD + ["isolated gene"]), encoding="ascii")
    # Print code points so the check does not depend on how swipl quotes its output.
    out = run_swipl(
        path,
        "forall(edge(S, T, X), (string_codes(S, A), string_codes(T, B), "
        "format('~w ~w ~w~n', [A, B, X]))), "
        "forall(gene(G), (string_codes(G, C), format('gene ~w~n', [C])))",
    )
    codes = {repr([ord(c) for c in name]).replace(" ", ""): name for name in AWKWARD}
    codes[repr([ord(c) for c in "isolated gene"]).replace(" ", "")] = "isolated gene"
    read_edges, read_genes = set(), set()
    for line in out.splitlines():
        parts = line.split(" ")
        if parts[0] == "gene":
            read_genes.add(codes[parts[1]])
        else:
            read_edges.add((codes[parts[0]], codes[parts[1]], int(parts[2])))
    assert read_edges == set(edges)
    assert read_genes == set(AWKWARD) | {"isolated gene"}


@needs_swipl
def test_exported_rules_deduce_and_explain_in_plain_swipl(tmp_path):
    path = tmp_path / "kb.pl"
    path.write_text(prolog.program_text([("TP53", "MDM2", 1), ("MDM2", "TP53", -1)], []))
    out = run_swipl(
        path,
        'deduce(["TP53"-(-1)], 3, S), print(S), nl, '
        'forall(explain_walk(["TP53"-(-1)], "MDM2", 3, W), (print(W), nl))',
    )
    assert out.splitlines() == [
        '["MDM2"-conflict,"TP53"-perturbed]',
        'walk(["TP53","MDM2"],[1],-1)',
        'walk(["TP53","MDM2","TP53","MDM2"],[1,-1,1],-1)',
    ]


@needs_swipl
def test_rules_load_without_warnings_when_there_are_no_facts(tmp_path):
    path = tmp_path / "empty.pl"
    path.write_text(prolog.program_text([], []))
    assert run_swipl(path, 'deduce(["x"-1], 2, S), print(S), nl') == '["x"-perturbed]\n'


def test_program_text_is_deterministic_and_collapses_duplicates():
    edges = [("b", "c", 1), ("a", "b", -1), ("a", "b", -1)]
    text = prolog.program_text(edges, ["z"], rules=False)
    assert text == prolog.program_text(list(reversed(edges)), ["z"], rules=False)
    facts = [line for line in text.splitlines() if line and not line.startswith("%")]
    assert facts == [
        'gene("a").',
        'gene("b").',
        'gene("c").',
        'gene("z").',
        'edge("a", "b", -1).',
        'edge("b", "c", 1).',
    ]


def test_facts_export_reads_back_with_read_facts(tmp_path):
    edges = [(a, b, sign) for (a, b), sign in zip(itertools.pairwise(AWKWARD), [1, -1, 0] * 3)]
    path = tmp_path / "facts.pl"
    path.write_text(prolog.program_text(edges, ["isolated"], rules=False))
    read_edges, read_genes = prolog.read_facts(path)
    assert sorted((s, t, sign) for s, t, sign, _ in read_edges) == sorted(edges)
    assert set(read_genes) == set(AWKWARD) | {"isolated"}


def test_prolog_string_reads_back_exactly_for_control_characters():
    text = "tab\there\nnew line\x00nul\x7fdel\u2028sep😀"
    assert prolog.query([], [], f"X = {prolog.prolog_string(text)}") == [{"X": text}]


# ---- explanation --------------------------------------------------------------------------


def test_explain_lists_signed_walks_shortest_first():
    edges = [
        ("a", "b", 1),
        ("a", "c", -1),
        ("b", "c", 1),
        ("b", "c", -1),  # dual edge: one walk per sign
        ("a", "c", 0),  # '?' edges never appear in an explanation
        ("c", "c", -1),
    ]
    walks = prolog.explain(edges, genes_of(edges), {"a": -1}, "c", k=3)
    # Hand-written: length 1: a -| c.  Length 2: a -> b -| c, a -> b -> c, a -| c -| c.
    # Length 3: a -> b -| c -| c, a -> b -> c -| c, a -| c -| c -| c.
    expected = [
        Walk.from_steps(("a", "c"), (-1,), -1),
        Walk.from_steps(("a", "b", "c"), (1, -1), -1),
        Walk.from_steps(("a", "b", "c"), (1, 1), -1),
        Walk.from_steps(("a", "c", "c"), (-1, -1), -1),
        Walk.from_steps(("a", "b", "c", "c"), (1, -1, -1), -1),
        Walk.from_steps(("a", "b", "c", "c"), (1, 1, -1), -1),
        Walk.from_steps(("a", "c", "c", "c"), (-1, -1, -1), -1),
    ]
    assert walks == expected
    assert [w.sign for w in walks] == [1, 1, -1, -1, -1, 1, 1]


def test_explain_starts_from_every_perturbed_gene():
    edges = [("a", "c", 1), ("b", "c", 1)]
    walks = prolog.explain(edges, genes_of(edges), {"b": 1, "a": -1}, "c", k=2)
    assert [(w.genes, w.sign) for w in walks] == [(("a", "c"), -1), (("b", "c"), 1)]


def test_explain_is_empty_when_no_signed_walk_reaches_the_gene():
    edges = [("a", "b", 0), ("b", "c", 1)]
    assert prolog.explain(edges, genes_of(edges), {"a": 1}, "c", k=3) == []
    assert prolog.explain(edges, genes_of(edges), {"a": 1}, "nowhere", k=3) == []


def test_explain_limit_keeps_the_first_walks_in_order_on_a_dense_cyclic_graph():
    genes = list("abcd")
    edges = [(s, t, sign) for s in genes for t in genes for sign in (1, -1)]
    k = 6
    every = sorted(
        Walk.from_steps(("a", *middle, "d"), signs, 1)
        for length in range(1, k + 1)
        for middle in itertools.product(genes, repeat=length - 1)
        for signs in itertools.product((-1, 1), repeat=length)
    )
    assert prolog.explain(edges, genes, {"a": 1}, "d", k=k, limit=30) == every[:30]


def test_explain_limit_bounds_the_work_on_a_graph_with_astronomically_many_walks():
    genes = [f"g{i}" for i in range(12)]
    edges = [(s, t, sign) for s in genes for t in genes for sign in (1, -1)]
    start = time.perf_counter()
    walks = prolog.explain(edges, genes, {"g0": -1}, "g11", k=12, limit=20)
    assert len(walks) == 20 and all(w.length == 1 or w.length == 2 for w in walks)
    assert time.perf_counter() - start < 5


# ---- queries ------------------------------------------------------------------------------


EDGES = [("geneA", "geneC", -1), ("geneB", "geneC", 1), ("TP53", "MDM2", 1)]


def test_query_returns_one_dict_per_solution_in_order():
    solutions = prolog.query(EDGES, genes_of(EDGES), 'edge(S, "geneC", Sign)')
    assert solutions == [{"S": "geneA", "Sign": -1}, {"S": "geneB", "Sign": 1}]


def test_query_upper_case_gene_names_are_strings_not_variables():
    assert prolog.query(EDGES, genes_of(EDGES), 'edge("TP53", T, _)') == [{"T": "MDM2"}]


def test_query_converts_values_and_hides_underscore_variables():
    solutions = prolog.query(
        EDGES,
        [],
        'X = f("a", 1), Y = [1, 2.5, abc, "s"], Z = _, _Hidden = 3, N = 12345678901234567890',
    )
    assert solutions == [
        {"X": 'f("a",1)', "Y": [1, 2.5, "abc", "s"], "Z": None, "N": 12345678901234567890}
    ]


def test_query_can_call_the_deduction_rules():
    solutions = prolog.query(EDGES, genes_of(EDGES), 'status(["geneA"-1], 2, G, S)')
    assert solutions == [{"G": "geneA", "S": "perturbed"}, {"G": "geneC", "S": "down"}]


def test_query_knowledge_bases_do_not_share_a_database():
    assert prolog.query([("x", "y", 1)], [], "edge(S, T, _)") == [{"S": "x", "T": "y"}]
    assert prolog.query([("p", "q", -1)], [], "edge(S, T, _)") == [{"S": "p", "T": "q"}]


def test_query_reloads_a_knowledge_base_evicted_from_the_cache():
    first = [("first", "kb", 1)]
    assert prolog.query(first, [], "edge(S, _, _)") == [{"S": "first"}]
    for i in range(12):
        prolog.query([(f"g{i}", "h", 1)], [], "true")
    assert prolog.query(first, [], "edge(S, _, _)") == [{"S": "first"}]


def test_query_stops_at_max_solutions():
    assert len(prolog.query([], [], "between(1, 100, X)", max_solutions=7)) == 7


@pytest.mark.parametrize(
    "goal",
    [
        "shell('ls')",
        "call(shell, ls)",
        'assertz(edge("a","b",1))',
        "retract(edge(_, _, _))",
        "open('x', write, S)",
        "consult('x')",
        "halt",
        'format("hello~n")',
        "G = shell(ls), call(G)",
        "X = 1, call(X)",
        "use_module(library(process))",
    ],
)
def test_query_refuses_unsafe_goals(goal, tmp_path):
    with pytest.raises(UnsafeGoal, match="goal refused"):
        prolog.query(EDGES, genes_of(EDGES), goal)
    # The database is unchanged.
    assert len(prolog.query(EDGES, genes_of(EDGES), "edge(_, _, _)")) == 3


def test_query_with_an_endless_goal_stops_at_the_time_limit():
    start = time.perf_counter()
    with pytest.raises(InputError, match="time limit of 0.5 s"):
        prolog.query(EDGES, [], "repeat, fail", time_limit=0.5)
    assert time.perf_counter() - start < 5


def test_query_reports_syntax_errors_and_unknown_predicates():
    with pytest.raises(InputError, match="cannot parse goal"):
        prolog.query(EDGES, [], "edge(S, T")
    with pytest.raises(InputError, match="unknown procedure nosuch/1"):
        prolog.query(EDGES, [], "nosuch(X)")


# ---- reading facts ------------------------------------------------------------------------


def write(tmp_path, text, name="kb.pl"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_facts_accepts_strings_atoms_and_sign_tokens(tmp_path):
    path = write(
        tmp_path,
        '% a comment\ngene("lonely").\nedge(lacI, lacZ, -).\nedge("TP53", \'MDM2\', +).\n'
        "edge(a, b, '?').\n\n   edge(\"Ünï\", b, 0).\nedge(a, b, -1).\n",
    )
    edges, genes = prolog.read_facts(path)
    assert edges == [
        ("lacI", "lacZ", -1, 3),
        ("TP53", "MDM2", 1, 4),
        ("a", "b", 0, 5),
        ("Ünï", "b", 0, 7),
        ("a", "b", -1, 8),
    ]
    assert genes == ["lonely"]


def test_read_facts_refuses_a_directive_without_running_it(tmp_path):
    marker = tmp_path / "marker"
    path = write(tmp_path, f"edge(a, b, 1).\n:- shell('touch {marker}').\n")
    with pytest.raises(InputError, match=r"kb.pl:2: directives .* are not allowed") as info:
        prolog.read_facts(path)
    assert info.value.line == 2
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("edge(a, b, 1).\nreaches(X, Y) :- edge(X, Y, _).\n", 2, "rules are not allowed"),
        ("edge(a, b, 1).\nfoo(1).\n", 2, "unexpected foo/1"),
        ("edge(a, b, 2).\n", 1, "edge sign must be"),
        ('edge("", b, 1).\n', 1, "empty gene name"),
        ("edge(a, b, 1).\nedge(TP53, b, 1).\n", 2, "a variable where a gene name belongs"),
        ("edge(a, b, 1).\n\nedge(a, b 1).\n", 3, "Syntax error"),
        ("edge(a, b, 1).\n/* a\ncomment */ gene(1).\n", 3, "quoted string or an atom"),
    ],
)
def test_read_facts_names_the_line_of_each_problem(tmp_path, text, line, message):
    with pytest.raises(InputError, match=message) as info:
        prolog.read_facts(write(tmp_path, text))
    assert info.value.line == line


def test_read_facts_reports_the_line_of_a_non_utf8_byte(tmp_path):
    path = tmp_path / "kb.pl"
    path.write_bytes(b"edge(a, b, 1).\nedge(a, b, 1).\nedge('\xff', b, 1).\n")
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        prolog.read_facts(path)
    assert info.value.line == 3


def test_read_facts_reports_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        prolog.read_facts(tmp_path / "absent.pl")
