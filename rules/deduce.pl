/*  Deduction and explanation over a signed gene regulatory network.

    Facts (written by aligned, or by hand):
        gene(Gene).                 every gene, isolated ones included
        edge(Source, Target, Sign). Sign 1 activation, -1 repression, 0 unknown ('?')
    Gene names are Prolog strings ("geneA"), so an upper-case name is never a variable.
    A dual edge (+- in RegulonDB) is two facts, one with 1 and one with -1.

    A perturbation is a list of Gene-Direction pairs, Direction -1 (loss of function)
    or 1 (gain of function), e.g. ["geneA"-(-1), "geneB"-1].

    Semantics (DESIGN.md section 1): Gene is reached with sign S if a walk of length
    1..K from a perturbed gene P, over signed edges only, has S = d(P) * product of the
    edge signs.  Walks may revisit genes and pass through other perturbed genes.  A walk
    that uses a '?' edge carries no sign: it only marks a gene `unsigned` when no signed
    walk reaches it.  Perturbed genes are always `perturbed`.

    Deduction never enumerates walks (their number grows exponentially on cycles): it is
    a breadth-first search over states Gene-Sign, Sign in 1, -1 or u (a walk that used a
    '?' edge).  A state is reachable by a walk of length <= K iff its shortest distance
    is <= K, so K rounds of frontier expansion with a visited set decide every gene.

    Try it:
        ?- deduce(["geneA"-(-1)], 3, Statuses).
        ?- status(["geneA"-(-1)], 3, "geneC", Status).
        ?- explain_walk(["geneA"-(-1)], "geneC", 3, Walk).
*/

% Both predicates may have no clauses (an empty network) and facts may be added later.
:- dynamic edge/3, gene/1.
:- discontiguous edge/3, gene/1.

:- use_module(library(lists)).
:- use_module(library(ordsets)).
:- use_module(library(pairs)).


%!  deduce(+Perturbation, +K, -Statuses) is det.
%
%   Statuses is the sorted list of Gene-Status pairs for every gene whose status is not
%   `none`; Status is one of up, down, conflict, unsigned or perturbed.  Perturbed genes
%   are listed even when they have no gene/1 fact.
%   Cost: O((G + E) log(G + E) + K * G) for G genes and E edges.

deduce(Perturbation, K, Statuses) :-
    pairs_keys(Perturbation, Perturbed0),
    sort(Perturbed0, Perturbed),
    reached(Perturbation, K, States),
    group_pairs_by_key(States, GeneSigns),
    findall(Gene-Status,
            ( member(Gene-Signs, GeneSigns),
              \+ ord_memberchk(Gene, Perturbed),
              signs_status(Signs, Status)
            ),
            Reached),
    findall(Gene-perturbed, member(Gene, Perturbed), Marked),
    append(Marked, Reached, Statuses0),
    sort(Statuses0, Statuses).

%!  status(+Perturbation, +K, ?Gene, -Status) is nondet.
%
%   Status of Gene under Perturbation; fails for a gene whose status is `none`.

status(Perturbation, K, Gene, Status) :-
    deduce(Perturbation, K, Statuses),
    member(Gene-Status, Statuses).

% signs_status(+Signs, -Status): Signs is the ordered set of sign states reaching a gene.
signs_status(Signs, conflict) :- memberchk(1, Signs), memberchk(-1, Signs), !.
signs_status(Signs, up) :- memberchk(1, Signs), !.
signs_status(Signs, down) :- memberchk(-1, Signs), !.
signs_status(_, unsigned).

%!  reached(+Perturbation, +K, -States) is det.
%
%   States is the ordered set of Gene-Sign states reached by a walk of length 1..K from a
%   perturbed gene; Sign is 1, -1, or u for a walk that used a '?' edge.

reached(Perturbation, K, States) :-
    must_be(nonneg, K),
    sort(Perturbation, Start),
    frontier_rounds(K, Start, Start, [], States).

% frontier_rounds(+Rounds, +Frontier, +Visited, +Hit0, -Hit)
% Every generated state was reached by a walk of length 1..K (the start states only when
% a walk leads back to them), so Hit collects all of them; only states never visited
% before are expanded again, which keeps each state's expansion to one round.
frontier_rounds(0, _, _, Hit, Hit) :- !.
frontier_rounds(_, [], _, Hit, Hit) :- !.
frontier_rounds(Rounds, Frontier, Visited0, Hit0, Hit) :-
    findall(Next, (member(State, Frontier), state_step(State, Next)), Generated0),
    sort(Generated0, Generated),
    ord_union(Hit0, Generated, Hit1),
    ord_subtract(Generated, Visited0, New),
    ord_union(Visited0, New, Visited),
    Rounds1 is Rounds - 1,
    frontier_rounds(Rounds1, New, Visited, Hit1, Hit).

% state_step(+State, -Next): one edge from a Gene-Sign state.
state_step(Gene-Sign, Next-NextSign) :-
    edge(Gene, Next, EdgeSign),
    sign_step(Sign, EdgeSign, NextSign).

% A '?' edge, or any edge after one, gives a walk without a sign.
sign_step(u, _, u) :- !.
sign_step(_, 0, u) :- !.
sign_step(Sign, EdgeSign, NextSign) :- NextSign is Sign * EdgeSign.


%!  explain_walk(+Perturbation, +Gene, +K, -Walk) is nondet.
%
%   Walk = walk(Genes, EdgeSigns, StartSign) is a walk over signed edges of length 1..K
%   from a perturbed gene to Gene; Genes has one element more than EdgeSigns and StartSign
%   is the perturbation of the first gene.  Walks come shortest first, then ordered by
%   their genes, then by their edge signs (-1 before 1), so limit/2 keeps the first ones.
%   Every partial walk is extended only through genes from which Gene is reachable in
%   exactly the remaining number of steps, so no branch is a dead end: after O(K * E)
%   set-up, each walk costs O(length * out-degree).

explain_walk(Perturbation, Gene, K, walk(Genes, EdgeSigns, StartSign)) :-
    must_be(nonneg, K),
    sort(Perturbation, Starts),
    exact_layers(Gene, K, Layers),
    between(1, K, Length),
    nth0(Length, Layers, StartLayer),
    member(Start-StartSign, Starts),
    ord_memberchk(Start, StartLayer),
    gene_path(Start, Length, Layers, Genes),
    path_signs(Genes, EdgeSigns).

% exact_layers(+Gene, +K, -Layers): nth0(J, Layers, Layer) is the ordered set of genes
% with a signed walk of exactly J steps to Gene, for J in 0..K.
exact_layers(Gene, K, Layers) :-
    layers_from(K, [Gene], Layers).

layers_from(0, Layer, [Layer]) :- !.
layers_from(J, Layer, [Layer|Layers]) :-
    findall(Source, (member(Target, Layer), signed_edge(Source, Target, _)), Sources0),
    sort(Sources0, Sources),
    J1 is J - 1,
    layers_from(J1, Sources, Layers).

% gene_path(+Gene, +Steps, +Layers, -Genes): Genes starts at Gene and walks Steps signed
% edges, trying successors in standard order of their names.
gene_path(Gene, 0, _, [Gene]) :- !.
gene_path(Gene, Steps, Layers, [Gene|Genes]) :-
    Steps1 is Steps - 1,
    nth0(Steps1, Layers, Layer),
    findall(Next, signed_edge(Gene, Next, _), Nexts0),
    sort(Nexts0, Nexts),
    member(Next, Nexts),
    ord_memberchk(Next, Layer),
    gene_path(Next, Steps1, Layers, Genes).

% path_signs(+Genes, -EdgeSigns): one signed edge per step; a dual edge gives both.
path_signs([_], []).
path_signs([Source, Target|Genes], [Sign|Signs]) :-
    findall(Sign0, signed_edge(Source, Target, Sign0), Signs0),
    sort(Signs0, StepSigns),
    member(Sign, StepSigns),
    path_signs([Target|Genes], Signs).

signed_edge(Source, Target, Sign) :-
    edge(Source, Target, Sign),
    Sign \== 0.
