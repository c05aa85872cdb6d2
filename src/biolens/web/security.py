"""What keeps a local web app safe on a shared machine: an access token, CSRF, size limits, safe zips and paths.

The server binds 127.0.0.1, but any web page the user visits can make their browser send requests to it, and any
local user can connect to the port. So every request needs the random token (given once in the printed URL, then a
SameSite=Strict cookie), every state-changing request a CSRF token, and every file the user names or uploads is
checked before the engine sees it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import stat
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException

from biolens.errors import InputError
from biolens.readers import annotations, genome, image_decode, sequences, tables, variants

TOKEN_COOKIE = "biolens_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

# what uploads may be: exactly what the readers read (they export their suffixes), plus archives and indexes
IMAGE_SUFFIXES = set(image_decode.IMAGE_SUFFIXES)
TABLE_SUFFIXES = set(tables.TABLE_SUFFIXES) | {".h5ad", ".h5", ".mtx"}
SEQUENCE_SUFFIXES = (set(variants.VARIANT_SUFFIXES) | set(sequences.FASTA_SUFFIXES)
                     | set(genome.BED_SUFFIXES))   # peaks, cut from a genome
ALLOWED_SUFFIXES = (IMAGE_SUFFIXES | TABLE_SUFFIXES | SEQUENCE_SUFFIXES | set(annotations.ANNOTATION_SUFFIXES)
                    | {".zip", ".gz", ".bz2", ".xz", ".tbi", ".csi", ".bgi"})
# first bytes of the binary formats: an upload named .png must be a PNG
MAGIC = {
    ".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",), ".bmp": (b"BM",),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"), ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".gz": (b"\x1f\x8b",), ".h5ad": (b"\x89HDF",), ".h5": (b"\x89HDF",),
    ".parquet": (b"PAR1",), ".bcf": (b"\x1f\x8b", b"BCF"), ".bed": (b"\x6c\x1b\x01",), ".pgen": (b"\x6c\x1b",),
    ".xlsx": (b"PK\x03\x04",), ".xlsm": (b"PK\x03\x04",), ".webp": (b"RIFF",),
}
TEXT_SUFFIXES = ({".csv", ".tsv", ".txt", ".tab", ".mtx", ".vcf", ".xml", ".json", ".bim", ".fam", ".sample",
                  ".pvar", ".psam"} | set(sequences.FASTA_SUFFIXES))
IGNORED_IN_ZIPS = ("__MACOSX/", ".DS_Store", "Thumbs.db")  # the archivers' own metadata, never data


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(token: str) -> str:
    """Derived from the access token, so it needs no server-side store and changes with every server start."""
    return hmac.new(token.encode(), b"biolens-csrf", hashlib.sha256).hexdigest()[:40]


def same_secret(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


class AccessGate:
    """ASGI middleware: the token (query, once) or its cookie on every request; a Host the server expects; a body
    size limit. Anything else gets a short page saying what to do, never the app."""

    def __init__(self, app, *, token: str, max_body_bytes: int, allow_remote: bool):
        self.app, self.token, self.max_body_bytes, self.allow_remote = app, token, max_body_bytes, allow_remote

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.allow_remote and _host_name(headers.get("host", "")) not in LOOPBACK_HOSTS | {"testserver"}:
            # a page on another site that rebinds its DNS name to 127.0.0.1 arrives with its own Host
            return await _plain(send, 400, "This biolens server answers only on 127.0.0.1 (Host header refused).")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if same_secret(query.get("token"), self.token):
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            return await _send(send, 303, b"", [(b"location", location.encode()), (b"set-cookie", cookie.encode())])
        cookies = _cookies(headers.get("cookie", ""))
        if not same_secret(cookies.get(TOKEN_COOKIE), self.token):
            return await _plain(send, 403, "This biolens server needs its access token: open the address that "
                                           "`biolens serve` printed (it ends with ?token=...).")
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            return await _plain(send, 413, _too_large(self.max_body_bytes))
        started = False

        async def send_marked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _limited(receive, self.max_body_bytes), _with_security_headers(send_marked))
        except BodyTooLarge as exc:
            if not started:
                await _plain(send, 413, str(exc))


def _host_name(header: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1', '[::1]:8765' -> '[::1]'."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class BodyTooLarge(HTTPException):
    """Raised while a body without Content-Length is read; the app's error handler turns it into a 413 page."""

    def __init__(self, detail: str):
        super().__init__(status_code=413, detail=detail)


def _too_large(limit: int) -> str:
    return (f"The upload is larger than this server accepts ({limit / 2**20:.0f} MB). Give a path on this machine "
            "instead, or restart biolens serve with a larger --max-upload-mb.")


def _limited(receive, limit: int):
    """Count the bytes of a body sent without Content-Length (chunked) and stop at the limit."""
    seen = 0

    async def limited_receive():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(_too_large(limit))
        return message

    return limited_receive


def _with_security_headers(send):
    async def send_with_headers(message):
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            message["headers"] = list(message["headers"]) + [
                (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"),
                (b"referrer-policy", b"no-referrer")]
        await send(message)

    return send_with_headers


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    return {k: v for k, v in pairs}


async def _send(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())] + headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send, status: int, text: str):
    await _send(send, status, text.encode(), [(b"content-type", b"text/plain; charset=utf-8")])


# -- files and paths ---------------------------------------------------------------------------------------------
def inside_roots(text: str, roots: list[Path], *, what: str = "path") -> Path:
    """A path the user typed, resolved (symlinks and .. followed) and required to lie under an allowed root."""
    if not text or not text.strip():
        raise InputError(f"give a {what} on this machine.")
    path = Path(text.strip()).expanduser().resolve()
    if not any(path == root or path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise InputError(f"{text.strip()} is outside the folders this server may read ({allowed}); move the data "
                         "there or restart biolens serve with --root FOLDER.")
    if not path.exists():
        raise InputError(f"{path} does not exist; check the {what}.")
    return path


def safe_relative(name: str) -> PurePosixPath:
    """The relative path of an uploaded file (a folder upload sends sub-folders): no absolute paths, no '..'."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or any(p in ("..", "") for p in parts):
        raise InputError(f"the upload name {name!r} points outside its folder; rename the file.")
    return PurePosixPath(*[p for p in parts if p != "."])


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes read as text (a character cut at the end of them still counts)."""
    if head.startswith(MAGIC[".bed"]) or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(head) - 3
    return True


def check_upload_type(name: str, head: bytes) -> None:
    """Refuse a file whose name is not a data type biolens reads, or whose content is not what its name says."""
    lower = name.lower()
    suffix = Path(lower).suffix
    if suffix not in ALLOWED_SUFFIXES:
        raise InputError(f"{name}: biolens does not read {suffix or 'files without an extension'} files; upload "
                         "images (PNG, JPEG, TIFF, BMP, WebP, HEIC), a zip of them, tables (CSV, TSV, Excel, "
                         "Parquet, h5ad) or "
                         "genotypes (VCF, BCF, PLINK .bed/.bim/.fam or .pgen/.pvar/.psam, BGEN with its .sample) or "
                         "sequences (FASTA, or peaks as BED/narrowPeak).")
    if suffix == ".bed" and _is_text(head):  # a peaks BED (text), not a PLINK .bed (binary)
        return
    if suffix in MAGIC and not head.startswith(MAGIC[suffix]):
        raise InputError(f"{name}: the content is not a {suffix[1:].upper()} file although the name says so; "
                         "upload the original file.")
    if suffix in TEXT_SUFFIXES and b"\x00" in head:
        raise InputError(f"{name}: a {suffix[1:].upper()} file should be text, but this one is binary.")


def extract_zip(archive: Path, target: Path, *, max_bytes: int, max_files: int = 500_000,
                max_ratio: float = 200.0) -> int:
    """Unpack an uploaded zip into `target`, refusing what could escape or explode: absolute or '..' names,
    symbolic links, more than `max_bytes` unpacked (counted while writing, never trusting the header) or an entry
    compressed more than `max_ratio` times. Returns the number of files written."""
    written_bytes, written = 0, 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            entries = bundle.infolist()
            if len(entries) > max_files:
                raise InputError(f"{archive.name} holds {len(entries)} entries (more than {max_files}); split it.")
            for entry in entries:
                if entry.is_dir() or any(tag in entry.filename for tag in IGNORED_IN_ZIPS):
                    continue
                if stat.S_ISLNK(entry.external_attr >> 16):
                    raise InputError(f"{archive.name}: {entry.filename} is a symbolic link; zips with links are "
                                     "refused, zip the files themselves.")
                relative = safe_relative(entry.filename)
                if entry.compress_size and entry.file_size > (1 << 20) and entry.file_size / entry.compress_size > max_ratio:
                    raise InputError(f"{archive.name}: {entry.filename} unpacks {entry.file_size / entry.compress_size:.0f}"
                                     " times larger than it is packed; such zips (zip bombs) are refused.")
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(entry) as source, open(destination, "wb") as sink:
                    while chunk := source.read(1 << 20):
                        written_bytes += len(chunk)
                        if written_bytes > max_bytes:
                            raise InputError(f"{archive.name} unpacks to more than {max_bytes / 2**20:.0f} MB; "
                                             "give a folder on this machine instead.")
                        sink.write(chunk)
                written += 1
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive.name} is not a readable zip file ({exc}); zip the folder again.") from None
    if not written:
        raise InputError(f"{archive.name} holds no files.")
    return written
