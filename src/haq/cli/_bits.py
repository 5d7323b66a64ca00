"""The bit-width options shared by `haq search` and `haq compare`: sets or a min/max range."""

from __future__ import annotations

from typing import Any

BITS_HELP = "candidate bit widths for weights and activations, e.g. 2,4,8"
W_BITS_HELP = "candidate weight bit widths, e.g. 2,4,8 (one value fixes weights)"
A_BITS_HELP = "candidate activation bit widths, e.g. 8 (one value: a weights-only search)"


def _parse(option: str, text: str) -> tuple[int, ...]:
    from haq.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give integers 1-8 separated by commas, "
                          "e.g. 2,4,8") from None


def bit_space(bits: str | None = None, w_bits: str | None = None, a_bits: str | None = None,
              min_bits: int | None = None, max_bits: int | None = None) -> Any:
    """The ``BitSpace`` of the command-line options.

    ``--bits`` sets both operands' candidates, ``--w-bits``/``--a-bits`` one operand's;
    ``--min-bits``/``--max-bits`` (default 2 and 8) give the range of every operand without a
    set, so ``--a-bits 8 --min-bits 3`` searches weights in 3-8 at 8-bit activations.

    Raises:
        ConfigError: an operand is given twice (--bits with --w-bits or --a-bits), min/max are
            given but every operand has a set, or a set is malformed.
    """
    from haq.errors import ConfigError
    from haq.policy import BitSpace

    for option, value, operand in (("--w-bits", w_bits, "weight"),
                                   ("--a-bits", a_bits, "activation")):
        if bits is not None and value is not None:
            raise ConfigError(f"--bits and {option} both set the {operand} bit widths; give "
                              "one of them")
    w_text = w_bits if w_bits is not None else bits
    a_text = a_bits if a_bits is not None else bits
    ranged = min_bits is not None or max_bits is not None
    if ranged and w_text is not None and a_text is not None:
        raise ConfigError("--min-bits/--max-bits give a range, but candidate sets already fix "
                          "both weights and activations; drop --min-bits/--max-bits or list "
                          "the widths you want in the set")
    lo = 2 if min_bits is None else min_bits
    hi = 8 if max_bits is None else max_bits
    return BitSpace(
        w_range=None if w_text is not None else (lo, hi),
        a_range=None if a_text is not None else (lo, hi),
        w_bits=None if w_text is None else _parse("--w-bits" if w_bits else "--bits", w_text),
        a_bits=None if a_text is None else _parse("--a-bits" if a_bits else "--bits", a_text))
