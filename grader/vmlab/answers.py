"""The shape of each probe's answer, as JSON Schema: what the grader relies on.

The worker runs the student's code, so its answers are untrusted: `sandbox.Worker.call` checks
each one against its shape before any property reads it, and an answer of the wrong shape costs
the example (a WorkerFailure, "garbled") instead of a KeyError in the grader.

The check is `shape_error`, for the few keywords used here (KEYWORDS): the jsonschema library
took longer over an answer than most probes take to run. It is stricter than JSON Schema in one
respect: an integer is an int, never 1.0, since properties format integers with `:#x`.
tests/test_answers.py checks it against jsonschema.
"""

from __future__ import annotations

from typing import Any

INT = {"type": "integer"}
TEXT = {"type": "string"}
INTS = {"type": "array", "items": INT}
STOP = {"anyOf": [{"type": "null"},
                  {"type": "object", "required": ["reason"], "properties": {"reason": TEXT}}]}
HOST_STOP = {"type": "object", "required": ["reason", "detail"],
             "properties": {"reason": TEXT, "detail": TEXT}}
VCPU_FIELDS = ("pc", "mode", "sstatus", "sie", "stvec", "scounteren", "sscratch", "sepc",
               "scause", "stval", "satp", "stimecmp", "instret", "idle")
VCPU = {"type": "object", "required": [*VCPU_FIELDS, "regs"],
        "properties": {**{f: INT for f in VCPU_FIELDS},
                       "regs": {"type": "array", "items": INT, "minItems": 32, "maxItems": 32},
                       "trap_entry": {"type": "boolean"}}}
DIGESTS = {"type": "object", "additionalProperties": TEXT}
FAULT = {"anyOf": [{"type": "null"}, {"type": "array", "items": INT, "minItems": 2,
                                      "maxItems": 2}]}
FOREIGN_WRITE = {"type": "array", "prefixItems": [INT, TEXT, TEXT, TEXT], "minItems": 4,
                 "maxItems": 4}  # host frame, its owner, on whose behalf, by hardware or VMM
ONE_TRAP = {"type": "object", "required": ["fault", "vcpu"],
            "properties": {"fault": FAULT, "vcpu": VCPU, "stop": STOP}}


def _obj(**properties: dict) -> dict:
    return {"type": "object", "required": list(properties), "properties": properties}


IPC_ANSWER = _obj(result={"anyOf": [{"type": "null"}, TEXT, INTS]}, woken=INTS)

# which guest owns each host frame: [frame, owner]; sent where the hardware is the grader's
OWNERS = {"type": "array", "items": {"type": "array", "prefixItems": [INT, TEXT],
                                     "minItems": 2, "maxItems": 2}}

SHAPES: dict[str, dict] = {  # isolation's optional `owners` is added below
    "guest": _obj(stop=STOP, host_stop=HOST_STOP, vcpu=VCPU, console=TEXT, pages=DIGESTS,
                  full_pages=DIGESTS,
                  counts={"type": "object", "additionalProperties": INT,
                          "required": ["native", "emulated", "traps"]}),
    "isolation": _obj(host_stop=HOST_STOP, attacker_stop=STOP, bystander_stop=STOP,
                      bystander_changed=INTS,
                      foreign_writes={"type": "array", "items": FOREIGN_WRITE},
                      leaks={"type": "array", "items": {"type": "array", "items": TEXT,
                                                        "minItems": 2, "maxItems": 2}},
                      pages=DIGESTS, full_pages=DIGESTS,
                      native=INT, attacker_instret=INT),
    "ipc_guests": _obj(host_stop=HOST_STOP, guests={"type": "array", "items": _obj(
        stop=STOP, vcpu=VCPU, console=TEXT, pages=DIGESTS, full_pages=DIGESTS)}),
    "translate": _obj(results={"type": "array", "items": {"type": "object"}}),
    "flush": _obj(still_mapped={"type": "array", "items": INTS}, cached=INT, lost={
        "type": "array", "items": {"type": "array", "prefixItems": [INT, INT, INT, INT, {
            "anyOf": [{"type": "null"}, INT]}], "minItems": 5, "maxItems": 5}}),
    # each call: the handler, its integer arguments, how it ended (["returned"], ["fault",
    # cause, tval], ["error", type]); what `handle` raised, if anything
    "dispatch": _obj(calls={"type": "array", "items": {
        "type": "array", "minItems": 3, "maxItems": 3,
        "prefixItems": [TEXT, INTS, {"anyOf": [
            {"type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [TEXT, INT, INT]},
            {"type": "array", "minItems": 1, "maxItems": 2, "items": TEXT}]}]}},
        raised={"anyOf": [{"type": "null"}, {"type": "array", "items": TEXT, "minItems": 2,
                                             "maxItems": 2}]}),
    "reflect": ONE_TRAP, "emulate": ONE_TRAP, "counter_read": ONE_TRAP, "sret": ONE_TRAP,
    "wfi": ONE_TRAP,
    "hypercall": {**ONE_TRAP, "required": ["fault", "vcpu", "console"],
                  "properties": {**ONE_TRAP["properties"], "console": TEXT,
                                 "blocked": {"type": "boolean"},
                                 "ipc_calls": {"type": "array", "items": INTS}}},
    "ring": _obj(results={"type": "array"}),
    "ipc_start": _obj(ids=INTS),
    "ipc_batch": _obj(answers={"type": "array", "items": IPC_ANSWER}),
}


KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties", "items",
                      "prefixItems", "minItems", "maxItems", "anyOf"})
TYPES = {"integer": lambda v: type(v) is int, "string": lambda v: type(v) is str,
         "boolean": lambda v: type(v) is bool, "null": lambda v: v is None,
         "array": lambda v: type(v) is list, "object": lambda v: type(v) is dict}


def shape_error(value: Any, shape: dict, path: str = "") -> str | None:
    """Why `value` (as json.loads made it) does not have `shape`, naming where; None if it
    does."""
    found = _fault(value, shape)
    if found is None:
        return None
    keys, text = found
    for key in reversed(keys):
        path = f"{path}/{key}".lstrip("/")
    return f"{path or '(top)'}: {text}"


def _fault(value: Any, shape: dict) -> tuple[list, str] | None:
    """What is wrong with `value`, and the keys that lead to it, innermost first; None if
    nothing. The path is made only for a fault: an answer may list thousands of frames."""
    if "anyOf" in shape and all(_fault(value, s) for s in shape["anyOf"]):
        return [], f"{_short(value)} is not valid under any of the given schemas"
    kind = shape.get("type")
    if kind is not None and not TYPES[kind](value):
        return [], f"{_short(value)} is not of type {kind!r}"
    found: tuple[list, str] | None = None
    if type(value) is dict:
        for key in shape.get("required", ()):
            if key not in value:
                return [], f"{key!r} is a required property"
        known, others = shape.get("properties", {}), shape.get("additionalProperties")
        for key, item in value.items():
            inner = known.get(key, others)
            if inner is not None and (found := _fault(item, inner)):
                found[0].append(key)
                return found
    elif type(value) is list:
        if len(value) < shape.get("minItems", 0):
            return [], f"{_short(value)} is too short"
        if len(value) > shape.get("maxItems", len(value)):
            return [], f"{_short(value)} is too long"
        prefix, rest = shape.get("prefixItems", ()), shape.get("items")
        # an item of a type alone (a list of ints) is tested here, without a call of its own
        alone = TYPES[rest["type"]] if rest is not None and rest.keys() == {"type"} else None
        for i, item in enumerate(value):
            inner = prefix[i] if i < len(prefix) else rest
            if inner is None:
                continue
            if i >= len(prefix) and alone is not None:
                if alone(item):
                    continue
                found = [], f"{_short(item)} is not of type {rest['type']!r}"
            else:
                found = _fault(item, inner)
            if found:
                found[0].append(i)
                return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


SHAPES["isolation"]["properties"]["owners"] = OWNERS
