"""Perturbations as text: ``geneA=-1;geneB=+1``, genes sorted, any gene name allowed.

A gene name may hold any character (DESIGN.md section 1), so the four characters that would
make the text ambiguous (``%``, ``;``, ``=`` and line or tab breaks) are percent-encoded.
Ordinary names (``TP53``, ``HLA-A``, ``5'UTR``, ``b0683``) read as themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

_ESCAPED = {"%": "%25", ";": "%3B", "=": "%3D", "\t": "%09", "\n": "%0A", "\r": "%0D"}
_UNESCAPED = {code: char for char, code in _ESCAPED.items()}
SIGN_TEXT = {-1: "-1", 1: "+1"}
_SIGN_VALUES = {"-1": -1, "+1": 1, "1": 1}


def escape_gene(gene: str) -> str:
    """Percent-encode the characters of ``gene`` that the perturbation text reserves."""
    return "".join(_ESCAPED.get(char, char) for char in gene)


def unescape_gene(text: str) -> str:
    """Invert :func:`escape_gene`; raise ``ValueError`` on a ``%`` not followed by a known code."""
    parts = text.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        code = "%" + part[:2].upper()
        if code not in _UNESCAPED:
            raise ValueError(f"unknown escape {('%' + part[:2])!r} in gene {text!r}")
        out.append(_UNESCAPED[code] + part[2:])
    return "".join(out)


def check_perturbation(perturbation: Mapping[str, int]) -> dict[str, int]:
    """Return ``perturbation`` as a gene-sorted ``dict[str, int]``; raise ``ValueError`` if a
    gene is not a non-empty string or a sign is not -1 or +1."""
    checked = {}
    for gene in sorted(perturbation):
        sign = perturbation[gene]
        if not isinstance(gene, str) or gene == "":
            raise ValueError(f"perturbed genes must be non-empty strings, got {gene!r}")
        if isinstance(sign, bool) or sign not in (-1, 1):
            raise ValueError(f"the perturbation of {gene!r} must be -1 or +1, got {sign!r}")
        checked[gene] = int(sign)
    return checked


def format_perturbation(perturbation: Mapping[str, int]) -> str:
    """Write a perturbation as ``geneA=-1;geneB=+1`` (genes sorted; ``""`` for none).

    Examples
    --------
    >>> format_perturbation({"lexA": 1, "crp": -1})
    'crp=-1;lexA=+1'
    """
    checked = check_perturbation(perturbation)
    return ";".join(f"{escape_gene(gene)}={SIGN_TEXT[sign]}" for gene, sign in checked.items())


def parse_perturbation(text: str) -> dict[str, int]:
    """Read the text :func:`format_perturbation` writes; raise ``ValueError`` if malformed.

    Examples
    --------
    >>> parse_perturbation("crp=-1;lexA=+1")
    {'crp': -1, 'lexA': 1}
    """
    if text == "":
        return {}
    perturbation: dict[str, int] = {}
    for item in text.split(";"):
        gene_text, separator, sign_text = item.partition("=")
        if not separator or gene_text == "" or sign_text not in _SIGN_VALUES:
            raise ValueError(f"cannot read {item!r} in {text!r}: expected GENE=-1 or GENE=+1")
        gene = unescape_gene(gene_text)
        if gene in perturbation:
            raise ValueError(f"gene {gene!r} appears twice in {text!r}")
        perturbation[gene] = _SIGN_VALUES[sign_text]
    return dict(sorted(perturbation.items()))


def gene_set_key(perturbation: Mapping[str, int]) -> str:
    """The split group of a perturbation: its genes, sorted, without signs (``geneA;geneB``)."""
    return ";".join(escape_gene(gene) for gene in sorted(perturbation))
