"""The one reader of Kaldi tables (wav.scp, utt2spk, text, utt2label, feats.scp, ...).

A table is lines `<id> <value>`: the id is the first whitespace-separated field, the value the
rest of the line (stripped; it may hold spaces). Blank lines are skipped.

Two rules hold wherever a table is read:

- Utterance ids become file names (`feats/<utt>.npy`, `<utt>.wav` when vocoding or resampling),
  so an id must be a plain file name: no `/`, no `\\` and no `..` (so `../../x` or `/abs/x`
  can never write outside the output folder).
- A relative path in wav.scp (or feats.scp) is resolved against the folder that holds the table,
  wherever the command runs from: `data/train/wav.scp` with `wav/a.wav` means
  `data/train/wav/a.wav`. Absolute paths are taken as they are. Piped commands (`sox ... |`) are
  not supported.
"""

from __future__ import annotations

from pathlib import Path

ID_RULE = "ids must be plain file names (no '/', '\\\\' or '..')"


def id_problem(utt: str) -> str | None:
    """Why `utt` cannot be used as a file name, or None if it can."""
    if "/" in utt or "\\" in utt or ".." in utt or "\0" in utt:
        return f"unsafe id {utt!r}: {ID_RULE}"
    return None


def read_table(path: str | Path, problems: list[str] | None = None) -> dict[str, str]:
    """A Kaldi table as {id: value}, in file order.

    Args:
        path: the table file.
        problems: if given, every defect is appended here as one line ('<file>:<line>: ...') and
            reading goes on (blank lines are reported too); otherwise the first defect raises.

    Returns:
        {id: value} (the first entry wins for a duplicate id when collecting problems).

    Raises:
        FileNotFoundError: the table does not exist.
        ValueError: a line without a value, a duplicate id or an unsafe id, naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    entries: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            if problems is not None:
                problems.append(f"{where}: empty line")
            continue
        parts = line.split(maxsplit=1)
        why = None
        if len(parts) < 2:
            why = f"expected '<id> <value>', got {line!r}"
        elif parts[0] in entries:
            why = f"duplicate id {parts[0]!r}"
        else:
            why = id_problem(parts[0])
        if why is None:
            entries[parts[0]] = parts[1].strip()
        elif problems is None:
            raise ValueError(f"{where}: {why}")
        else:
            problems.append(f"{where}: {why}")
    return entries


def resolve(value: str, table: str | Path) -> Path:
    """The file a wav.scp/feats.scp value names: absolute as is, relative to the folder of `table`."""
    path = Path(value)
    return path if path.is_absolute() else Path(table).parent / path


def read_scp(path: str | Path, problems: list[str] | None = None) -> dict[str, str]:
    """wav.scp / feats.scp -> {utt: resolved file path} (see the module docstring for the rules).

    `problems` collects defects instead of raising, as in `read_table` (a piped entry is left out).
    """
    entries = {}
    for utt, value in read_table(path, problems).items():
        if value.endswith("|"):
            why = f"{path}: {utt}: piped commands are not supported ({value!r}); write the audio to files"
            if problems is None:
                raise ValueError(why)
            problems.append(why)
            continue
        file = resolve(value, path)
        old_rule = Path(path).parent.parent / value  # training's rule before the one reader (2026-12)
        if not Path(value).is_absolute() and not file.exists() and old_rule.exists():
            why = (
                f"{path}: {utt}: {file} does not exist; relative paths are resolved against the folder holding "
                f"{Path(path).name} (they were against its parent, where {old_rule} exists): fix the path"
            )
            if problems is None:
                raise ValueError(why)
            problems.append(why)
            continue
        entries[utt] = str(file)
    return entries


def read_labels(data_dir: str | Path, utts) -> tuple[dict[str, str], Path]:
    """Class labels of a data dir: ({id: label} of its utt2label (or text), the file read).

    Raises:
        FileNotFoundError: the dir has neither utt2label nor text.
        ValueError: an utterance of `utts` has no label (naming the file and one such id).
    """
    data_dir = Path(data_dir)
    label_file = data_dir / "utt2label" if (data_dir / "utt2label").is_file() else data_dir / "text"
    if not label_file.is_file():
        raise FileNotFoundError(f"{data_dir}: no utt2label or text file to take class labels from")
    raw = read_table(label_file)
    missing = sorted(set(utts) - set(raw))
    if missing:
        raise ValueError(f"{label_file}: no label for {len(missing)} utterance(s), e.g. {missing[0]}")
    return raw, label_file


def label_names(labels) -> list[str]:
    """The distinct class names of `labels` in class-id order: by length, then text (0..9, 10, ...)."""
    return sorted(set(labels), key=lambda s: (len(s), s))
