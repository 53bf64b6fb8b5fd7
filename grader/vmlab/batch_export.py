"""What `vmlab batch` grades: the submissions in a folder, or in Gradescope's export.

Gradescope's "Export Submissions" is a zip (or, unzipped, a folder) holding
`submission_metadata.yml` and one `submission_<id>` folder per submission. The metadata maps each
folder to its submitters, with Ruby-symbol keys (`:submitters:`, `:name:`, `:sid:`, `:email:`,
`:created_at:`, `:score:`); a group submission lists several submitters, and each gets a row of
the gradebook. Any other folder is a folder of submissions: each folder or zip in it is one, named
after itself.

Bad input never stops the batch: each problem is one paragraph naming the file, and what can be
graded still is. Only an input that is no batch at all (`UsageError`) stops it.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from .errors import UsageError

METADATA = "submission_metadata.yml"
MAX_MEMBER = 64 << 20  # bytes: one file of an export (a student's files are kilobytes)
MAX_EXPORT = 4 << 30  # bytes: a whole export, unpacked
SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Submitter:
    name: str
    sid: str
    email: str


@dataclass
class Entry:
    """One submission: `key` names its folder in the output, `path` is a folder or a zip.
    `problem`: why it cannot be graded (a file of it was damaged in the export), if so."""
    key: str
    path: Path
    submitters: list[Submitter]
    created_at: str = ""
    problem: str | None = None


@dataclass
class Batch:
    entries: list[Entry] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key or file, paragraph)
    source: str = "folder"  # or "gradescope"
    # members of an export zip that could not be unpacked: where, and the paragraph that says so
    damaged: dict[Path, str] = field(default_factory=dict)


def discover(source: Path, scratch: Path) -> Batch:
    """The submissions of `source` (a folder, or an export zip unpacked into `scratch`)."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"submissions {source}: no such file or folder.")
    batch = Batch()
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise UsageError(f"submissions {source}: neither a folder nor a zip file. Give the "
                             "zip of Gradescope's \"Export Submissions\", or a folder holding "
                             "one folder or zip per submission.")
        root = _unpack(source, scratch / "export", batch)
        found = sorted(root.rglob(METADATA), key=lambda p: len(p.parts))
        if not found:
            raise UsageError(f"submissions {source}: not a Gradescope export: the zip has no "
                             f"{METADATA}. Unzip it and give the folder if it holds one folder "
                             "or zip per submission.")
        _gradescope(found[0].parent, batch)
        return batch
    if (source / METADATA).is_file():
        _gradescope(source, batch)
        return batch
    if (source / "vmm").is_dir() or (source / "machine").is_dir():
        raise UsageError(f"submissions {source}: this is one submission (it has a vmm/ folder), "
                         "not a batch: grade it with `vmlab grade`, or put it in a folder of "
                         "submissions.")
    try:
        children = sorted(p for p in source.iterdir()
                          if not p.name.startswith((".", "__MACOSX")))
    except OSError as e:
        raise UsageError(f"submissions {source}: cannot read the folder ({e.strerror}).") \
            from None
    if any(p.is_dir() and p.name.startswith("submission_") for p in children):
        batch.problems.append((str(source / METADATA), (
            f"{source / METADATA}: missing, although {source} holds submission_* folders as "
            "Gradescope's export does; without it no submission has a name, SID or email, so "
            "each is named after its folder.")))
    for p in children:
        if p.is_dir() or (p.is_file() and (p.suffix.lower() == ".zip" or _is_zip(p))):
            key = _key(p.stem if p.is_file() else p.name)
            batch.entries.append(Entry(key, p, [Submitter(p.stem, p.stem, "")]))
        else:
            batch.problems.append((str(p), (
                f"{p}: neither a folder nor a zip, so not a submission of this folder of "
                "submissions (each is one folder or zip); not graded. Unpack it into a folder "
                "(a .tar.gz, say) if it is one.")))
    if not batch.entries:
        raise UsageError(f"submissions {source}: not a Gradescope export (no {METADATA}) and "
                         "no submission folder or zip in it.")
    _no_duplicate_keys(batch)
    return batch


def _lost(batch: Batch, dest: Path, parts: tuple[str, ...], why: str) -> None:
    """Record that the member at `parts` was not unpacked, under the folders it names before
    it climbs (`..`), so that the submission it is in is not graded without it. An absolute
    path, or one with a drive, is in no submission."""
    if not parts or parts[0] in ("/", "\\") or ":" in parts[0]:
        return
    inside = parts[:parts.index("..")] if ".." in parts else parts
    if inside:
        batch.damaged[dest.joinpath(*inside)] = why


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _key(name: str) -> str:
    return SAFE_KEY.sub("_", name).strip("._") or "submission"


def _unpack(zpath: Path, dest: Path, batch: Batch) -> Path:
    """Unpack an export, skipping (and reporting) members that climb out, links, and files
    too large to be a submission's."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    total = 0
    try:
        with zipfile.ZipFile(zpath) as z:
            for info in z.infolist():
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    why = (f"{zpath}: the member {name!r} has a path that climbs out of the "
                           "export (an absolute path or `..`); it was not unpacked. The rest "
                           "was.")
                    batch.problems.append((name, why))
                    _lost(batch, dest, parts, why)
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    why = (f"{zpath}: the member {name!r} is a symbolic link (it could point "
                           "anywhere on this machine); it was not unpacked. The rest was.")
                    batch.problems.append((name, why))
                    _lost(batch, dest, parts, why)
                    continue
                if info.is_dir() or "__MACOSX" in parts:
                    continue
                total += info.file_size
                if info.file_size > MAX_MEMBER or total > MAX_EXPORT:
                    why = (f"{zpath}: the member {name!r} is {info.file_size} bytes, over the "
                           f"{MAX_MEMBER >> 20} MiB a file of an export may have (or the export "
                           f"is over {MAX_EXPORT >> 30} GiB); it was not unpacked.")
                    batch.problems.append((name, why))
                    batch.damaged[dest.joinpath(*parts)] = why
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with z.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError,
                        zlib.error) as e:  # a bad CRC, cut short, encrypted, odd compression
                    target.unlink(missing_ok=True)
                    why = (f"{zpath}: the member {name!r} cannot be read ({e}); it was not "
                           "unpacked. The rest was.")
                    batch.problems.append((name, why))
                    batch.damaged[target] = why
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise UsageError(f"submissions {zpath}: the zip cannot be read ({e}).") from None
    return dest


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading a Ruby-tagged value (`!ruby/object:BigDecimal 18:0.1E2`,
    as Rails writes a score) as the plain scalar, list or map it tags: it constructs nothing."""


def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_Loader.add_multi_constructor("!", _untagged)


def _gradescope(root: Path, batch: Batch) -> None:
    batch.source = "gradescope"
    meta = root / METADATA
    try:
        data = yaml.load(meta.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except OSError as e:
        raise UsageError(f"{meta}: cannot read it ({e.strerror}).") from None
    except UnicodeDecodeError:
        raise UsageError(f"{meta}: not UTF-8 text; is it Gradescope's metadata?") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{meta}{where}: not valid YAML ({getattr(e, 'problem', e)}); "
                         "Gradescope's export writes it as YAML.") from None
    if not isinstance(data, dict):
        raise UsageError(f"{meta}: not Gradescope's metadata: it should map each submission "
                         "folder to its `:submitters:`.")
    folders = {p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("submission_")}
    for folder, info in data.items():
        folder = str(folder)
        entry = _entry(meta, root, folder, info, batch)
        if entry is not None:
            batch.entries.append(entry)
    for folder in sorted(folders - {str(f) for f in data}):
        batch.problems.append((folder, (
            f"{root / folder}: a submission folder that {meta} does not list, so it has no "
            "student; not graded. Was the metadata file edited, or two exports merged?")))
    _no_duplicate_sids(meta, batch)


def _entry(meta: Path, root: Path, folder: str, info: object, batch: Batch) -> Entry | None:
    path = root / folder
    if "/" in folder or "\\" in folder or folder in (".", ".."):
        batch.problems.append((folder, f"{meta}: the entry {folder!r} is not a folder name of "
                                       "the export; skipped."))
        return None
    if not path.is_dir():
        batch.problems.append((folder, (
            f"{meta}: lists {folder!r}, but the export has no such folder (the metadata does "
            "not match its folders); that submission was not graded.")))
        return None
    submitters = info.get(":submitters") if isinstance(info, dict) else None
    people = []
    for s in submitters if isinstance(submitters, list) else []:
        if isinstance(s, dict):
            people.append(Submitter(str(s.get(":name") or ""), str(s.get(":sid") or ""),
                                    str(s.get(":email") or "")))
    if not people:
        batch.problems.append((folder, (
            f"{meta}: the entry {folder!r} has no `:submitters:` list of `:name:`, `:sid:` and "
            "`:email:`; that submission was not graded.")))
        return None
    created = info.get(":created_at", "") if isinstance(info, dict) else ""
    entry = Entry(_key(folder), path, people, str(created or ""))
    lost = [why for where, why in batch.damaged.items()
            if where == path or path in where.parents]
    if lost:  # graded without that file, it would score as if the student had not written it
        entry.problem = ("a file of this submission could not be unpacked from the export "
                         "(graded without it, the submission would lose that file's points): "
                         + lost[0])
    return entry


def _no_duplicate_sids(meta: Path, batch: Batch) -> None:
    """Two submissions that claim one student: neither can be told to be the one that
    counts, so neither is graded."""
    owners: dict[str, list[Entry]] = {}
    for e in batch.entries:
        for s in e.submitters:
            ident = s.sid or s.email
            if ident:
                owners.setdefault(ident, []).append(e)
    bad: set[str] = set()
    for ident, entries in owners.items():
        if len(entries) > 1:
            names = ", ".join(e.path.name for e in entries)
            batch.problems.append((entries[0].key, (
                f"{meta}: the student {ident} is a submitter of {len(entries)} submissions "
                f"({names}); an export has one active submission per student, so none of "
                "them was graded. Keep the one that counts and rerun with --resume.")))
            bad |= {e.key for e in entries}
    batch.entries = [e for e in batch.entries if e.key not in bad]


def _no_duplicate_keys(batch: Batch) -> None:
    seen: dict[str, Entry] = {}
    kept = []
    for e in batch.entries:
        if e.key in seen:
            batch.problems.append((e.key, (
                f"{e.path}: has the same name as {seen[e.key].path} once made safe for a "
                "folder name; not graded (rename one of them).")))
            continue
        seen[e.key] = e
        kept.append(e)
    batch.entries = kept
