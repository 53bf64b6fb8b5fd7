"""The worker's answer against what the hardware did: the hardware's word wins.

A probe's answer comes from the student's process, which can say anything. What the hardware
measured (hardware.py's record: traps, instructions retired, how runs stopped, pages written,
the walks a probe asked for) replaces the answer's own account of it, and what the worker
reports of its own state (a virtual CPU's instret) must fit what the hardware saw. `check`
returns what does not fit, if anything: the example then fails as "inconsistent".
"""

from __future__ import annotations

from typing import Any

RAM_BASE = 0x8000_0000
GUEST_PAGE_FAULTS = (20, 21, 23)
MAX_FOREIGN = 20


def check(probe: str, args: dict, result: dict, record: dict) -> str | None:
    fn = {"guest": _guest, "isolation": _isolation, "translate": _translate,
          "flush": _flush, "ipc_guests": _ipc_guests}.get(probe)
    return fn(args, result, record) if fn else None


def _retired(reported: Any, record: dict, whose: str) -> str | None:
    """Each trap lets the VMM retire at most one instruction (emulated, or an SBI call); every
    other instruction the guest retired, the hardware ran."""
    most = record["retired"] + record["traps"]
    if isinstance(reported, int) and reported > most:
        return (f"your VMM reports that {whose} retired {reported} instructions, but the "
                f"hardware ran {record['retired']} of them and trapped {record['traps']} "
                "times (a trap can retire at most one instruction, emulated): a virtual CPU "
                "counts only what its guest ran")
    return None


def _host_stop(result: dict, record: dict) -> str | None:
    if record["stop"] is None:
        if result["host_stop"]["reason"] != "budget":
            return "your VMM reports how the hardware stopped, but it never ran"
        return None
    result["host_stop"] = {"reason": record["stop"][0], "detail": record["stop"][1]}
    if record["loop"]:  # [cause, pc, traps]: a trap loop ended the run (hardware.TRAP_LOOP)
        result["host_stop"]["loop"] = record["loop"]
    return None


def _guest(args: dict, result: dict, record: dict) -> str | None:
    result["counts"]["traps"] = record["traps"]
    result["counts"]["native"] = record["retired"]
    return _host_stop(result, record) or _retired(result["vcpu"]["instret"], record,
                                                 "the guest")


def _ipc_guests(args: dict, result: dict, record: dict) -> str | None:
    return _host_stop(result, record) or _retired(
        sum(g["vcpu"]["instret"] for g in result["guests"]), record, "the guests together")


def _isolation(args: dict, result: dict, record: dict) -> str | None:
    problem = _host_stop(result, record) or _retired(result["attacker_instret"], record,
                                                     "the attacker")
    if problem:
        return problem
    owners = {frame: owner for frame, owner in result.get("owners", [])}
    by_hardware = []
    for writer, pages in sorted(record["writes"].items()):
        for page in pages:
            frame = RAM_BASE + page * 4096
            owner = owners.get(frame, "none")
            if owner != writer:
                by_hardware.append([frame, owner, writer or "vmm", "hardware"])
    by_vmm = [w for w in result["foreign_writes"] if w[3] == "vmm"]
    result["foreign_writes"] = (by_hardware + by_vmm)[:MAX_FOREIGN]
    return None


def _tagged(record: dict) -> dict[tuple, list]:
    """The probe's walks by tag, each tag's results in order."""
    out: dict[tuple, list] = {}
    for tag, walked in record["walks"]:
        out.setdefault(tuple(tag) if isinstance(tag, list) else (tag,), []).append(walked)
    return out


def _translate(args: dict, result: dict, record: dict) -> str | None:
    walks = _tagged(record)
    for i, r in enumerate(result["results"]):
        if args["paging"] == "shadow":
            r["hardware"] = [_pa(walks.get(("hw", i, other), [None])[-1])
                             for other in (0, 1, 2)]
            continue
        done = walks.get(("walk", i))
        last = done[-1] if done else None
        if last is None or "pa" not in last and last["trap"][0] in GUEST_PAGE_FAULTS:
            if r["walk"][0] in ("host", "fault"):
                return ("your VMM reports a two-stage walk that the hardware did not make "
                        f"(query {i + 1})")
            continue
        r["walk"] = ["host", last["pa"]] if "pa" in last else ["fault", last["trap"][0]]
    return None


def _flush(args: dict, result: dict, record: dict) -> str | None:
    walks = record["walks"]
    result["cached"] = sum(1 for tag, w in walks if tag[0] == "cache" and "pa" in w)
    result["still_mapped"] = [[tag[1], tag[2], tag[3], w["pa"]] for tag, w in walks
                              if tag[0] == "still" and "pa" in w]
    before = {tuple(tag[2:5]): w["pa"] for tag, w in walks
              if tag[0] == "cache" and len(tag) == 5 and "pa" in w}
    again = _tagged(record)
    result["lost"] = [[*key, pa, after] for key, pa in before.items()
                      if (after := _pa(again.get(("again", *key), [None])[-1])) != pa]
    return None


def _pa(walked: dict | None) -> int | None:
    return None if walked is None or "pa" not in walked else walked["pa"]
