"""Conditional parameters: ``when: {PARAM: VALUE}`` on a parameter spec or a nested group.

A parameter with ``when`` exists in a trial only while its condition holds: every key names
another parameter (its dotted path for nested ones) that has ``values`` (or a constant
``value``), and that parameter's value in the trial must be the given value or one of the given
list. A group's ``when`` applies to every parameter inside it, together with their own.
Conditions chain: a parameter whose parent is absent is absent too. Otherwise it is left out of
the trial entirely (params, argv, ``SWEEPQ_PARAMS``, ``run.config``, the dashboard).

W&B's schema rejects ``when`` as an unknown key, so no config W&B accepts changes meaning here.

This module is pure: it checks the ``when`` keys of a normalised ``parameters`` section
(:func:`check`, called by :mod:`sweepq.config`) and answers, for the search strategies, which
parameters a set of values activates (:class:`Conditions`). Values compare as grid values do
(:func:`sweepq.params.canonical`: ``1 == 1.0``, ``True != 1``).

A list in ``when`` means "any of these". To match a parameter whose values are themselves lists,
write the list inside a list (``when: {layers: [[64, 64]]}``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from sweepq.checks import Checker, article, describe, did_you_mean, one_line
from sweepq.params import GROUP, ParamPath, canonical, flatten

__all__ = ["WHEN", "Conditions", "check", "normalise_when"]

WHEN = "when"
"""The key of a spec (leaf or group) that holds its condition."""

_CHOICE_KINDS = ("categorical", "categorical_w_probabilities", "constant")

Rule = tuple[ParamPath, frozenset[Any]]
"""One key of a condition: the parent's path and the canonical values that activate."""


def normalise_when(ck: Checker, when: Any, path: str) -> dict[str, list[Any]] | None:
    """The shape of one ``when`` (``{name: [values...]}``); names are resolved by :func:`check`,
    once the whole ``parameters`` section is known."""
    if not isinstance(when, Mapping) or not when:
        ck.error(path, f"must be a mapping such as {{optimizer: sgd}} (got {describe(when)})")
        return None
    out: dict[str, list[Any]] = {}
    for key, value in when.items():
        if isinstance(value, list):
            if not value:
                ck.error(f"{path}.{key}", "must be a value or a non-empty list of values (got [])")
                continue
            out[key] = list(value)
        elif isinstance(value, Mapping):
            ck.error(f"{path}.{key}", f"must be a value or a list of values (got {describe(value)})")
        else:
            out[key] = [value]
    return out


def _where(path: ParamPath) -> str:
    return "parameters." + ".parameters.".join(path)


def _walk(parameters: Mapping[str, Any], prefix: ParamPath = ()
          ) -> Iterator[tuple[ParamPath, Mapping[str, Any], bool]]:  # fmt: skip
    """Every spec (groups and leaves), with its path and whether it is a group."""
    for name, spec in parameters.items():
        path = (*prefix, name)
        group = spec.get("distribution") == GROUP
        yield path, spec, group
        if group:
            yield from _walk(spec["parameters"], path)


def _owners(path: ParamPath, group: bool, leaves: Iterable[ParamPath]) -> list[ParamPath]:
    """The leaves a ``when`` at ``path`` applies to: the spec itself, or every leaf of a group."""
    return [leaf for leaf in leaves if leaf[: len(path)] == path] if group else [path]


def _resolver(leaves: Mapping[ParamPath, Mapping[str, Any]]) -> dict[str, list[ParamPath]]:
    names: dict[str, list[ParamPath]] = {}
    for leaf in leaves:
        names.setdefault(".".join(leaf), []).append(leaf)
    return names


def check(ck: Checker, parameters: Mapping[str, Any]) -> None:
    """Resolve and check every ``when`` of a normalised ``parameters`` section: each key names
    another parameter with values, each value is one of them, and no condition depends on
    itself. One line per problem, naming its key path."""
    leaves = flatten(parameters)
    names = _resolver(leaves)
    edges: dict[ParamPath, set[ParamPath]] = {}
    where_of: dict[ParamPath, str] = {}
    for path, spec, group in _walk(parameters):
        when = spec.get(WHEN)
        if not when:
            continue
        where = f"{_where(path)}.{WHEN}"
        for key, values in when.items():
            found = names.get(key, [])
            if len(found) != 1:
                what = "names more than one parameter" if found else "names no parameter"
                hint = did_you_mean(key, names)
                nested = [name for name in names if name.endswith(f".{key}")]
                if not found and not hint and len(nested) == 1:
                    hint = f" (did you mean {nested[0]}?)"
                ck.error(
                    f"{where}.{key}", f"{what}{hint}; name a parameter by its path, dotted for a nested one"
                )
                continue
            parent = found[0]
            pspec = leaves[parent]
            kind = pspec["distribution"]
            if kind not in _CHOICE_KINDS:
                ck.error(
                    f"{where}.{key}",
                    f"{key} is {article(kind)} {kind} parameter; a condition "
                    "can only name a parameter with values: [...] (or value: ...)",
                )
                continue
            allowed = pspec["values"] if "values" in pspec else [pspec["value"]]
            known = {canonical(v) for v in allowed}
            for v in values:
                if canonical(v) not in known:
                    choices = ", ".join(one_line(repr(a), 40) for a in allowed[:10])
                    ck.error(
                        f"{where}.{key}",
                        f"{one_line(repr(v), 60)} is not one of {key}'s values ({choices})",
                    )
            owners = _owners(path, group, leaves)
            for leaf in owners:
                edges.setdefault(leaf, set()).add(parent)
                where_of.setdefault(leaf, where)
    cycle = _find_cycle(edges)
    if cycle:
        chain = " -> ".join(".".join(p) for p in cycle)
        ck.error(where_of[cycle[0]], f"conditions form a cycle: {chain}")


def _find_cycle(edges: Mapping[ParamPath, set[ParamPath]]) -> list[ParamPath] | None:
    """A dependency cycle (its nodes, first repeated at the end), or None."""
    state: dict[ParamPath, int] = {}  # 1 = on the stack, 2 = done
    stack: list[ParamPath] = []

    def visit(node: ParamPath) -> list[ParamPath] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


class Conditions:
    """Which leaf parameters a set of values activates, for a checked ``parameters`` section.

    ``order`` lists the leaves parents-first (otherwise in :func:`sweepq.params.flatten` order),
    so a strategy that decides parameters in that order always knows a parameter's parents when
    it reaches it. Falsy when no parameter has a condition: then every leaf is always active and
    the strategies keep their unconditional code paths (and W&B's exact behaviour).
    """

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        specs = flatten(parameters)
        self.leaves: list[ParamPath] = list(specs)
        names = _resolver(specs)
        rules: dict[ParamPath, list[Rule]] = {}
        for path, spec, group in _walk(parameters):
            when = spec.get(WHEN)
            if not when:
                continue
            own = [(names[key][0], frozenset(canonical(v) for v in values)) for key, values in when.items()]
            for leaf in _owners(path, group, self.leaves):
                rules.setdefault(leaf, []).extend(own)
        self.rules: dict[ParamPath, tuple[Rule, ...]] = {k: tuple(v) for k, v in rules.items()}
        self.order: list[ParamPath] = self._topological()
        self.parents: frozenset[ParamPath] = frozenset(p for rs in self.rules.values() for p, _ in rs)
        self.choices: dict[ParamPath, list[Any]] = {}
        """Each parent's distinct values (``values``, or a constant's one ``value``)."""
        for parent in self.parents:
            spec = specs[parent]
            distinct: dict[Any, Any] = {}
            for v in spec["values"] if "values" in spec else [spec.get("value")]:
                distinct.setdefault(canonical(v), v)
            self.choices[parent] = list(distinct.values())

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _topological(self) -> list[ParamPath]:
        done: set[ParamPath] = set()
        out: list[ParamPath] = []

        def place(leaf: ParamPath) -> None:
            if leaf in done:
                return
            done.add(leaf)  # checked configs have no cycles; this also stops one cold
            for parent, _ in self.rules.get(leaf, ()):
                place(parent)
            out.append(leaf)

        for leaf in self.leaves:
            place(leaf)
        return out

    def holds(self, leaf: ParamPath, active: Mapping[ParamPath, Any]) -> bool:
        """Whether ``leaf`` is active, given the values of the active parameters decided so far
        (``active`` must hold every parent of ``leaf`` that is active)."""
        for parent, allowed in self.rules.get(leaf, ()):
            if parent not in active or canonical(active[parent]) not in allowed:
                return False
        return True

    def prune(self, flat: Mapping[ParamPath, Any]) -> dict[ParamPath, Any]:
        """The active part of ``{path: value}``, in the order of ``flat``."""
        if not self.rules:
            return dict(flat)
        active: dict[ParamPath, Any] = {}
        for leaf in self.order:
            if leaf in flat and self.holds(leaf, active):
                active[leaf] = flat[leaf]
        return {k: v for k, v in flat.items() if k in active}

    def max_active(self, within: Collection[ParamPath] | None = None) -> int:
        """The most leaves (of ``within``, default all) active together: the dimension of the
        largest branch; all of them when the parents' choices are too many to enumerate."""
        leaves = self.leaves if within is None else [leaf for leaf in self.leaves if leaf in within]
        best = 0
        for assignment in self._parent_assignments():
            if assignment is None:
                return len(leaves)
            best = max(best, sum(1 for leaf in leaves if self._active_in(leaf, assignment)))
        return best

    def count(self, sizes: Mapping[ParamPath, float]) -> float:
        """How many distinct points the space has, given each leaf's number of values (inf for
        a continuous one): the sum over the parents' active choices of the product of the other
        active leaves' sizes. ``inf`` when the parents' choices are too many to enumerate."""
        total = 0.0
        for assignment in self._parent_assignments():
            if assignment is None:
                return math.inf
            n = 1.0
            for leaf in self.leaves:
                if leaf not in self.parents and self._active_in(leaf, assignment):
                    n *= sizes.get(leaf, 1.0)
            total += n
            if math.isinf(total):
                return math.inf
        return total

    def _active_in(self, leaf: ParamPath, assignment: Mapping[ParamPath, Any]) -> bool:
        if leaf in self.parents:
            return leaf in assignment
        return self.holds(leaf, assignment)

    def _parent_assignments(self, limit: int = 100_000) -> Iterator[dict[ParamPath, Any] | None]:
        """Every consistent choice of the parents' values (an inactive parent absent), parents
        decided in ``order``; a final None when there are more than ``limit``."""
        parents = [leaf for leaf in self.order if leaf in self.parents]
        produced = 0

        def rec(i: int, assignment: dict[ParamPath, Any]) -> Iterator[dict[ParamPath, Any] | None]:
            nonlocal produced
            if produced > limit:
                return
            if i == len(parents):
                produced += 1
                yield None if produced > limit else dict(assignment)
                return
            parent = parents[i]
            if not self.holds(parent, assignment):
                yield from rec(i + 1, assignment)
                return
            for v in self.choices[parent]:
                assignment[parent] = v
                yield from rec(i + 1, assignment)
                del assignment[parent]

        yield from rec(0, {})
