"""Every method's choice-valued hyper-parameters (typed as Literal) are checked in one place."""
import dataclasses
import re
import typing

import pytest

from methods.base import METHODS, check_choices


def _literal_fields(cls):
    hints = typing.get_type_hints(cls.HParams)
    return {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(cls.HParams)
            if typing.get_origin(hints.get(f.name)) is typing.Literal}


def test_every_literal_field_of_every_method_rejects_a_value_outside_its_choices():
    seen = 0
    for name in METHODS.names():
        cls = METHODS.get(name)
        for field, choices in _literal_fields(cls).items():
            for ok in choices:
                check_choices(cls.HParams(**{field: ok}))
            message = f"{field} must be {'|'.join(choices)}, not 'nope'"
            with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
                cls.HParams(**{field: "nope"})
            seen += 1
    assert seen >= 15  # rgd 4, graddiff 3, salun 2, uce 3, ca 2, esd 1 (and any added since)
