/*  The bridge between Python (aligned.reasoning.prolog) and the knowledge-base modules:
    loading programs, the query sandbox, the fact reader and the JSON encoding of answers.
    It is engine plumbing, not knowledge-base logic, so it is not part of exported rules.
*/

:- module(aligned_engine,
          [ load_kb/2, unload_kb/1, solutions_json/5, run_query/5, read_facts/2 ]).

:- use_module(library(apply)).
:- use_module(library(lists)).
:- use_module(library(occurs)).
:- use_module(library(sandbox)).
:- use_module(library(solution_sequences)).
:- use_module(library(time)).
:- use_module(library(http/json)).

%!  load_kb(+Module, +File) is det.
%   Load a knowledge-base program into Module.  The module's default import module is
%   `system`, so it sees built-ins and autoloaded libraries but nothing from `user`.
load_kb(Module, File) :-
    set_module(Module:base(system)),
    load_files(Module:File, [silent(true)]).

%!  unload_kb(+File) is det.
unload_kb(File) :-
    unload_file(File).

%!  solutions_json(+Module, +Max, +Template, :Goal, -Json) is det.
%   Json is the JSON list of the first Max instances of Template for which Goal, called
%   in Module, succeeds.
solutions_json(Module, Max, Template, Goal, Json) :-
    findall(Template, limit(Max, Module:Goal), Rows),
    json_value(Rows, Value),
    json_text(Value, Json).

%!  run_query(+Module, +Text, +TimeLimit, +Max, -Json) is det.
%   Parse the goal Text, vet it, run it in Module and describe the outcome as a JSON object
%   with one key: solutions, syntax, refused, timeout or error.
run_query(Module, Text, TimeLimit, Max, Json) :-
    query_outcome(Module, Text, TimeLimit, Max, Outcome),
    json_text(Outcome, Json).

query_outcome(Module, Text, TimeLimit, Max, Outcome) :-
    catch(term_string(Goal, Text, [variable_names(Names), module(Module)]), Error, true),
    (   nonvar(Error)
    ->  message_text(Error, Message),
        Outcome = json([syntax=Message])
    ;   Goal == end_of_file
    ->  Outcome = json([syntax="the goal is empty"])
    ;   \+ callable(Goal)
    ->  Outcome = json([refused="the goal is not a callable term"])
    ;   forbidden_subterm(Goal, Name/Arity, Why)
    ->  (   Arity =:= 0
        ->  format(string(Message), "~q ~w", [Name, Why])
        ;   format(string(Message), "~q/~w ~w", [Name, Arity, Why])
        ),
        Outcome = json([refused=Message])
    ;   catch(safe_goal(Module:Goal), Unsafe, true), nonvar(Unsafe)
    ->  (   Unsafe = error(existence_error(procedure, Module:Missing), _)
        ->  head_indicator(Missing, Name/Arity),
            format(string(Message), "unknown procedure ~q/~w", [Name, Arity]),
            Outcome = json([error=Message])
        ;   message_text(Unsafe, Message),
            Outcome = json([refused=Message])
        )
    ;   run_goal(Module, Goal, Names, TimeLimit, Max, Outcome)
    ).

run_goal(Module, Goal, Names, TimeLimit, Max, Outcome) :-
    exclude(hidden_name, Names, Shown),
    pairs_values_eq(Shown, Keys, Vars),
    catch(call_with_time_limit(TimeLimit, findall(Vars, limit(Max, Module:Goal), Rows)),
          Error, true),
    (   var(Error)
    ->  maplist(solution_object(Keys), Rows, Objects),
        Outcome = json([solutions=Objects])
    ;   time_limit_error(Error)
    ->  Outcome = json([timeout= @(true)])
    ;   message_text(Error, Message),
        Outcome = json([error=Message])
    ).

hidden_name(Name=_) :- sub_atom(Name, 0, 1, _, '_').

pairs_values_eq([], [], []).
pairs_values_eq([Key=Var|Pairs], [Key|Keys], [Var|Vars]) :-
    pairs_values_eq(Pairs, Keys, Vars).

solution_object(Keys, Values, json(Pairs)) :-
    maplist(solution_pair, Keys, Values, Pairs).

solution_pair(Key, Value, Key=Json) :-
    json_value(Value, Json).

time_limit_error(time_limit_exceeded).
time_limit_error(time_limit_exceeded(_)).

%   The sandbox accepts some goals that change the database (assertz on a dynamic
%   predicate) or write to the terminal; a query is read-only, so any atom or functor
%   naming such a predicate refuses the goal, wherever it occurs in the term.
forbidden_subterm(Goal, Name/Arity, Why) :-
    sub_term(Sub, Goal),
    callable(Sub),
    functor(Sub, Name, Arity),
    forbidden(Name, Arity, Why),
    !.

forbidden(Name, _, Why) :- forbidden_name(Name, Why), !.
forbidden(append, 1, "does input/output").

forbidden_name(Name, "changes the database") :-
    memberchk(Name, [ assert, asserta, assertz, retract, retractall, abolish, erase,
                      recorda, recordz, flag, set_flag, nb_setval, b_setval,
                      set_prolog_flag, create_prolog_flag, dynamic, discontiguous,
                      multifile, module, set_module, op, table, untable,
                      abolish_all_tables, compile_predicates, garbage_collect_clauses
                    ]).
forbidden_name(Name, "loads code") :-
    memberchk(Name, [ consult, load_files, ensure_loaded, use_module, include, reexport,
                      autoload, make, load_foreign_library, use_foreign_library,
                      initialization
                    ]).
forbidden_name(aligned_engine, "is the query engine's own module").
forbidden_name(Name, "runs programs or stops the engine") :-
    memberchk(Name, [ shell, process_create, process_kill, halt, abort, thread_create,
                      thread_signal, thread_exit, thread_send_message, setenv, unsetenv,
                      at_halt
                    ]).
forbidden_name(Name, "does input/output") :-
    memberchk(Name, [ open, open_null_stream, close, see, seen, tell, told, set_input,
                      set_output, set_stream, read, read_term, read_clause, get_char,
                      put_char, format, write, writeln, writeq, print, write_canonical,
                      write_term, nl, tab, portray_clause, listing, print_message,
                      tmp_file, tmp_file_stream, delete_file, rename_file, make_directory,
                      delete_directory, working_directory, chdir, cd
                    ]).

%!  read_facts(+File, -Json) is det.
%   Read File term by term, never executing anything, and describe it as JSON: either
%   {"edges": [[S, T, Sign, Line], ...], "genes": [[G, Line], ...]} or
%   {"error": Message, "line": Line}.
read_facts(File, Json) :-
    setup_call_cleanup(
        open(File, read, In, [encoding(utf8)]),
        catch(read_fact_terms(In, Facts), Error, true),
        close(In)),
    (   var(Error)
    ->  facts_json(Facts, Value)
    ;   Error = fact_error(Line, Message)
    ->  Value = json([error=Message, line=Line])
    ;   Error = error(syntax_error(What), Context),
        syntax_error_place(Context, Line, Column)
    ->  message_text(error(syntax_error(What), _), Text),
        format(string(Message), "~w (column ~w)", [Text, Column]),
        Value = json([error=Message, line=Line])
    ;   message_text(Error, Message),
        Value = json([error=Message, line= @(null)])
    ),
    json_text(Value, Json).

read_fact_terms(In, Facts) :-
    read_term(In, Term, [ term_position(Position), syntax_errors(error),
                          module(aligned_engine) ]),
    (   Term == end_of_file
    ->  Facts = []
    ;   stream_position_data(line_count, Position, Line),
        fact_item(Term, Line, Fact),
        Facts = [Fact|Rest],
        read_fact_terms(In, Rest)
    ).

syntax_error_place(stream(_, Line, LinePosition, _), Line, Column) :-
    Column is LinePosition + 1.
syntax_error_place(file(_, Line, LinePosition, _), Line, Column) :-
    Column is LinePosition + 1.

fact_item(Term, Line, _) :-
    var(Term), !,
    fact_error(Line, "a variable is not a fact", []).
fact_item((:- _), Line, _) :- !,
    not_a_fact(Line, "directives (:- ...) are not allowed").
fact_item((?- _), Line, _) :- !,
    not_a_fact(Line, "queries (?- ...) are not allowed").
fact_item((Head :- _), Line, _) :- !,
    head_indicator(Head, Name/Arity),
    format(string(What), "rules are not allowed (found one for ~q/~w)", [Name, Arity]),
    not_a_fact(Line, What).
fact_item((Head --> _), Line, _) :- !,
    head_indicator(Head, Name/Arity),
    format(string(What), "grammar rules are not allowed (found one for ~q//~w)", [Name, Arity]),
    not_a_fact(Line, What).
fact_item(edge(Source, Target, Sign), Line, edge(SourceName, TargetName, Value, Line)) :- !,
    gene_name(Source, Line, SourceName),
    gene_name(Target, Line, TargetName),
    edge_sign(Sign, Line, Value).
fact_item(gene(Gene), Line, gene(Name, Line)) :- !,
    gene_name(Gene, Line, Name).
fact_item(Term, Line, _) :-
    functor(Term, Name, Arity),
    fact_error(Line, "unexpected ~q/~w; only edge/3 and gene/1 facts are allowed",
               [Name, Arity]).

head_indicator(Head, Name/Arity) :-
    callable(Head), !,
    functor(Head, Name, Arity).
head_indicator(Head, Head/0).

not_a_fact(Line, What) :-
    fact_error(Line, "~w; only edge/3 and gene/1 facts are read", [What]).

gene_name(Gene, Line, _) :-
    var(Gene), !,
    Hint = "quote names that start with an upper-case letter or _, e.g. \"TP53\"",
    fact_error(Line, "a variable where a gene name belongs; ~w", [Hint]).
gene_name(Gene, Line, Name) :-
    (   string(Gene) -> Name = Gene
    ;   atom(Gene) -> atom_string(Gene, Name)
    ;   fact_error(Line, "a gene name must be a quoted string or an atom, found ~q", [Gene])
    ),
    (   Name == ""
    ->  fact_error(Line, "empty gene name", [])
    ;   true
    ).

edge_sign(Sign, _, Value) :-
    ground(Sign),
    sign_value(Sign, Value), !.
edge_sign(Sign, Line, _) :-
    fact_error(Line, "an edge sign must be 1, -1, 0, '+', '-' or '?', found ~q", [Sign]).

sign_value(1, 1).
sign_value(-1, -1).
sign_value(0, 0).
sign_value(+(1), 1).
sign_value(+, 1).
sign_value(-, -1).
sign_value(?, 0).

fact_error(Line, Format, Arguments) :-
    format(string(Message), Format, Arguments),
    throw(fact_error(Line, Message)).

facts_json(Facts, json([edges=Edges, genes=Genes])) :-
    findall([S, T, Sign, Line], member(edge(S, T, Sign, Line), Facts), Edges),
    findall([G, Line], member(gene(G, Line), Facts), Genes).

%   Prolog values as JSON values: strings and atoms as strings, numbers as numbers, lists
%   as lists, unbound variables as null, anything else as its quoted text.
json_value(Value, @(null)) :- var(Value), !.
json_value(Value, Value) :- string(Value), !.
json_value(Value, Text) :- atom(Value), !, atom_string(Value, Text).
json_value(Value, Value) :- integer(Value), !.
json_value(Value, Value) :-
    float(Value),
    float_class(Value, Class),
    memberchk(Class, [normal, subnormal, zero]), !.
json_value(Value, Values) :- is_list(Value), !, maplist(json_value, Value, Values).
json_value(Value, Text) :- term_string(Value, Text).

json_text(Value, Text) :-
    atom_json_term(Text, Value, [as(string), width(0)]).

message_text(Error, Text) :-
    Error \= error(_, _), !,
    format(string(Text), "uncaught exception ~q", [Error]).
message_text(Error, Text) :-
    catch('$messages':translate_message(Error, Lines, []), _, fail), !,
    with_output_to(string(Raw), print_message_lines(current_output, '', Lines)),
    split_string(Raw, "\n", " \t", Parts0),
    exclude(==(""), Parts0, Parts),
    atomic_list_concat(Parts, ' ', Joined),
    atom_string(Joined, Text).
message_text(Error, Text) :-
    term_string(Error, Text).
