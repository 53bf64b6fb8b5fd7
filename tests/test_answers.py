"""The grader's check of the worker's answers (answers.shape_error) against jsonschema, the
independent implementation of the same schemas: on answers of each probe's shape and on such
answers with one or two faults, both give the same verdict, except that shape_error refuses 1.0
for an integer, on purpose."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vmlab.answers import KEYWORDS, SHAPES, shape_error
from vmlab.sandbox import ANSWER_SHAPE

ALL_SHAPES = {**SHAPES, "(answer)": ANSWER_SHAPE}

# jsonschema with the one difference: an integer is an int (not a bool, not 1.0)
STRICT = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: type(v) is int))


def keywords(shape: Any) -> set[str]:
    if isinstance(shape, list):
        return set().union(*map(keywords, shape)) if shape else set()
    if not isinstance(shape, dict):
        return set()
    found = set(shape)
    for key, inner in shape.items():
        if key == "properties":
            found |= set().union(*map(keywords, inner.values())) if inner else set()
        elif key in ("items", "additionalProperties", "anyOf", "prefixItems"):
            found |= keywords(inner)
    return found


def test_the_shapes_use_only_the_keywords_shape_error_knows() -> None:
    for name, shape in ALL_SHAPES.items():
        assert keywords(shape) <= KEYWORDS, (name, keywords(shape) - KEYWORDS)


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=False,
                                                                 allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=6)


@st.composite
def conforming(draw: st.DrawFn, shape: dict) -> Any:
    """A value of `shape`."""
    if "anyOf" in shape:
        return draw(conforming(draw(st.sampled_from(shape["anyOf"]))))
    kind = shape.get("type")
    if kind == "integer":
        return draw(st.integers())
    if kind == "string":
        return draw(st.text(max_size=8))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    if kind == "array":
        prefix = [draw(conforming(s)) for s in shape.get("prefixItems", ())]
        n = draw(st.integers(shape.get("minItems", 0), shape.get("maxItems", 4)))
        rest = shape.get("items")
        return prefix + [draw(conforming(rest)) if rest else draw(ANY_JSON)
                         for _ in range(n - len(prefix))]
    if kind == "object":
        props = shape.get("properties", {})
        out = {key: draw(conforming(props[key])) for key in props
               if key in shape.get("required", ()) or draw(st.booleans())}
        extra = shape.get("additionalProperties")
        for key in draw(st.lists(st.text(max_size=3), max_size=2)):
            out.setdefault(key, draw(conforming(extra)) if extra else draw(ANY_JSON))
        return out
    return draw(ANY_JSON)


def containers(value: Any) -> list[Any]:
    """Every non-empty list and dict in `value`, itself included."""
    if not isinstance(value, (list, dict)) or not value:
        return []
    inner = value.values() if isinstance(value, dict) else value
    return [value] + [c for item in inner for c in containers(item)]


@st.composite
def one_fault(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one thing changed: an item replaced (by anything, or by 1.0 or True), a
    key dropped, a list made one longer or shorter. (Changed in place.)"""
    # a container first, then a place in it: the few small ones (a fault's two numbers, a
    # digest) are hit as often as the 32 registers
    found = containers(value)
    if not found:
        return draw(ANY_JSON)
    container = draw(st.sampled_from(found))
    key = draw(st.sampled_from(list(container) if isinstance(container, dict)
                               else range(len(container))))
    how = draw(st.sampled_from(("replace", "number", "drop", "grow")))
    if how == "replace":
        container[key] = draw(ANY_JSON)
    elif how == "number":
        container[key] = draw(st.sampled_from((1.0, True, 0.5, -1, "1")))
    elif isinstance(container, dict) and how == "drop":
        del container[key]
    elif isinstance(container, dict):
        container[draw(st.text(max_size=3))] = draw(ANY_JSON)
    elif how == "drop":
        del container[key]
    else:
        container.insert(key, container[key])
    return value


@pytest.mark.parametrize("name", sorted(ALL_SHAPES))
@settings(max_examples=150, deadline=None)
@given(data=st.data(), faults=st.sampled_from((0, 1, 1, 2)))
def test_shape_error_agrees_with_jsonschema(name: str, data: st.DataObject,
                                            faults: int) -> None:
    shape = ALL_SHAPES[name]
    value = data.draw(conforming(shape))
    for _ in range(faults):
        value = data.draw(one_fault(value))
    value = json.loads(json.dumps(value))  # as the grader receives it
    error = shape_error(value, shape)
    valid = STRICT(shape).is_valid(value)
    assert (error is None) == valid, (name, value, error)


def test_an_integer_must_be_an_int_where_jsonschema_would_take_1_0() -> None:
    answer = {"ids": [1.0]}
    assert jsonschema.Draft202012Validator(SHAPES["ipc_start"]).is_valid(answer)
    assert shape_error(answer, SHAPES["ipc_start"]) == "ids/0: 1.0 is not of type 'integer'"


def test_the_error_names_the_field() -> None:
    vcpu = {f: 0 for f in ("pc", "mode", "sstatus", "sie", "stvec", "scounteren", "sscratch",
                           "sepc", "scause", "stval", "satp", "stimecmp", "instret", "idle")}
    answer = {"fault": None, "vcpu": {**vcpu, "regs": [0] * 31 + ["x"]}}
    assert shape_error(answer, SHAPES["reflect"]) == "vcpu/regs/31: 'x' is not of type 'integer'"
    del answer["vcpu"]["sepc"]
    assert shape_error(answer, SHAPES["reflect"]) == "vcpu: 'sepc' is a required property"
