"""The shape of each probe's answer, as JSON Schema: what the grader relies on.

The worker runs the student's code, so its answers are untrusted: `sandbox.Worker.call` checks
each one against its shape before any property reads it, and an answer of the wrong shape costs
the example (a WorkerFailure, "garbled") instead of a KeyError in the grader.
"""

from __future__ import annotations

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
                       "regs": {"type": "array", "items": INT, "minItems": 32, "maxItems": 32}}}
DIGESTS = {"type": "object", "additionalProperties": TEXT}
FAULT = {"anyOf": [{"type": "null"}, {"type": "array", "items": INT, "minItems": 2,
                                      "maxItems": 2}]}
FOREIGN_WRITE = {"type": "array", "prefixItems": [INT, TEXT, TEXT, TEXT], "minItems": 4,
                 "maxItems": 4}  # host frame, its owner, on whose behalf, by hardware or VMM
ONE_TRAP = {"type": "object", "required": ["fault", "vcpu"],
            "properties": {"fault": FAULT, "vcpu": VCPU, "stop": STOP}}


def _obj(**properties: dict) -> dict:
    return {"type": "object", "required": list(properties), "properties": properties}


SHAPES: dict[str, dict] = {
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
                      native=INT),
    "translate": _obj(results={"type": "array", "items": {"type": "object"}}),
    "flush": _obj(still_mapped={"type": "array", "items": INTS}),
    "dispatch": _obj(calls={"type": "array", "items": {"type": "array"}}),
    "reflect": ONE_TRAP, "emulate": ONE_TRAP, "counter_read": ONE_TRAP, "sret": ONE_TRAP,
    "wfi": ONE_TRAP,
    "hypercall": {**ONE_TRAP, "required": ["fault", "vcpu", "console"],
                  "properties": {**ONE_TRAP["properties"], "console": TEXT,
                                 "blocked": {"type": "boolean"},
                                 "ipc_calls": {"type": "array", "items": INTS}}},
    "ring": _obj(results={"type": "array"}),
    "ipc_start": _obj(ids=INTS),
    "ipc": _obj(result={"anyOf": [{"type": "null"}, TEXT, INTS]}, woken=INTS),
}
