"""``load_definitions``: import a definitions file (or a directory of them) at boot.

As RabbitMQ 4.x (rabbit_definitions, rabbit_definitions_import_local_filesystem):

* the path is a file, or a directory whose files are imported one by one in name
  order (RabbitMQ reads every file in it; Hutch too, skipping only subdirectories);
* the import is the ordinary one (additive: nothing absent from the file is deleted,
  an object that conflicts is skipped with a warning) and happens before the
  listeners start, so no client sees a half-configured broker;
* it is repeated at every boot, unless ``definitions.skip_if_unchanged = true``: then
  a SHA-256 of the files' bytes is kept and an unchanged file is not imported again
  (RabbitMQ keeps its hash in its database; Hutch keeps it in
  ``<data-dir>/definitions.imported.sha256``, one line of hex, written only once the
  import is durable, so a crash in between means one more import, never one fewer);
* a node that has definitions to load is not seeded with the default user and vhost
  (cli.py passes no defaults then), so the file's users are the only ones;
* a file that cannot be read, is not JSON or is not a definitions document stops the
  boot with one line naming the file (RabbitMQ refuses to boot too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from ..broker import definitions
from .schema import DEFINITIONS, BodyError

log = logging.getLogger("hutch.definitions")

HASH_FILE = "definitions.imported.sha256"


class BootDefinitionsError(Exception):
    """One line for the operator; the broker does not start."""


def _files(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise BootDefinitionsError(f"cannot list {path}: {exc.strerror or exc}") from None
    return [p for p in (os.path.join(path, n) for n in names) if not os.path.isdir(p)]


class BootDefinitions:
    """The files to import, read and checked before the store is opened (a bad file
    stops the boot before anything is written)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.docs, self.digest = read_definitions(path)


def read_definitions(path: str) -> tuple[list[tuple[str, Any]], str]:
    """Every file's parsed and type-checked document, and the SHA-256 of all their
    bytes (in order)."""
    digest = hashlib.sha256()
    docs = []
    for name in _files(path):
        try:
            with open(name, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise BootDefinitionsError(f"cannot read definitions file {name}: "
                                       f"{exc.strerror or exc}") from None
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + raw + b"\0")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise BootDefinitionsError(f"definitions file {name} is not valid JSON: "
                                       f"{exc}") from None
        if not isinstance(doc, dict):
            raise BootDefinitionsError(f"definitions file {name} is not usable: "
                                       "definitions must be a JSON object")
        try:
            docs.append((name, DEFINITIONS.check(doc)))
        except BodyError as exc:
            raise BootDefinitionsError(f"definitions file {name} is not usable: "
                                       f"{exc.reason}") from None
    return docs, digest.hexdigest()


def _stored_hash(data_dir: str | None) -> str | None:
    if data_dir is None:
        return None
    try:
        with open(os.path.join(data_dir, HASH_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


def _store_hash(data_dir: str, digest: str) -> None:
    path = os.path.join(data_dir, HASH_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(digest + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


async def load_at_boot(broker: Any, defs: BootDefinitions, data_dir: str | None,
                       skip_if_unchanged: bool = False) -> int:
    """Import ``defs``; returns the number of files imported (0: skipped, unchanged)."""
    digest = defs.digest
    if skip_if_unchanged and digest == _stored_hash(data_dir):
        log.info("Hash value of imported definitions matches current contents of %s: "
                 "not importing them again", defs.path)
        return 0
    for name, doc in defs.docs:
        log.info("Applying definitions from file at '%s'", name)
        skipped = definitions.import_document(broker, doc)
        if skipped:
            log.warning("definitions file %s: %d object(s) skipped (see above)", name,
                        len(skipped))
    error = await broker.definitions_synced()
    if error is not None:
        raise BootDefinitionsError(f"imported definitions could not be saved: {error}")
    if skip_if_unchanged and data_dir is not None:
        try:
            _store_hash(data_dir, digest)
        except OSError as exc:  # the next boot imports again: harmless, say it
            log.warning("cannot record the imported definitions' hash in %s: %s", data_dir,
                        exc.strerror or exc)
    return len(defs.docs)
