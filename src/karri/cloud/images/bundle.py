"""Making and opening bundles, streaming, in the euca2ools / ec2-ami-tools format.

Bundling: the image goes into a one-member tar stream (whose SHA-1 is the manifest's
digest), gzip, AES-128-CBC, then parts of 10 MiB named ``PREFIX.part.NN``, each with its
SHA-1. Unbundling runs the same chain backwards, checks every part's digest, the tar
stream's digest and the image size, and never holds more than a chunk in memory.
"""

from __future__ import annotations

import hashlib
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric import rsa

from karri.cloud.images import crypto

try:  # ISA-L's deflate is many times faster than zlib's and writes the same gzip format
    from isal import isal_zlib as deflate
except ImportError:  # pragma: no cover
    deflate = zlib  # type: ignore[assignment]
from karri.cloud.images.manifest import Manifest, Part

PART_SIZE = 10 * 1024 * 1024
CHUNK = 1024 * 1024
BLOCK = 512  # tar's block
TRAILER_LIMIT = 1024 * 1024  # tar end blocks and record padding after the image
Progress = Callable[[int], None]  # called with the number of bytes just processed


class BundleError(ValueError):
    """The bundle's bytes are not what its manifest says; the message says how."""


@dataclass
class BundleSpec:
    """What the manifest says about the image besides its bytes."""

    name: str
    architecture: str = "x86_64"
    image_type: str = "machine"
    account_id: str = ""
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    block_device_mappings: dict[str, str] = field(default_factory=dict)


class _PartWriter:
    """Splits a byte stream into part files, hashing each."""

    def __init__(
        self,
        directory: Path,
        prefix: str,
        part_size: int,
        on_part: Callable[[Path, Part], None] | None,
    ) -> None:
        self.directory, self.prefix, self.part_size = directory, prefix, part_size
        self.on_part = on_part
        self.parts: list[Part] = []
        self.total = 0
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._digest = hashlib.sha1()
        self._written = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._file is None:
                self._path = self.directory / f"{self.prefix}.part.{len(self.parts):02d}"
                self._file = open(self._path, "wb")  # noqa: SIM115
                self._digest, self._written = hashlib.sha1(), 0
            room = self.part_size - self._written
            piece = view[:room]
            self._file.write(piece)
            self._digest.update(piece)
            self._written += len(piece)
            self.total += len(piece)
            view = view[room:]
            if self._written == self.part_size:
                self._close_part()

    def _close_part(self) -> None:
        assert self._file is not None and self._path is not None
        self._file.close()
        part = Part(self._path.name, self._digest.hexdigest())
        self.parts.append(part)
        self._file = None
        if self.on_part:
            self.on_part(self._path, part)

    def close(self) -> None:
        if self._file is not None:
            self._close_part()


class _BundleStream:
    """The file object tarfile writes into: SHA-1, gzip, AES, parts."""

    def __init__(self, encryptor: crypto.Encryptor, sink: _PartWriter, level: int) -> None:
        self.digest = hashlib.sha1()
        self._gzip = deflate.compressobj(level, zlib.DEFLATED, 31)
        self._encryptor = encryptor
        self._sink = sink

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        compressed = self._gzip.compress(data)
        if compressed:
            self._sink.write(self._encryptor.update(compressed))
        return len(data)

    def finish(self) -> None:
        tail = self._gzip.flush()
        self._sink.write(self._encryptor.update(tail) + self._encryptor.finalize())
        self._sink.close()


class _ProgressReader:
    def __init__(self, source: BinaryIO, progress: Progress | None) -> None:
        self.source, self.progress = source, progress

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if self.progress and data:
            self.progress(len(data))
        return data


def create_bundle(
    source: BinaryIO,
    size: int,
    spec: BundleSpec,
    cloud_key: rsa.RSAPublicKey,
    directory: Path,
    *,
    user_key: rsa.RSAPrivateKey | None = None,
    prefix: str | None = None,
    part_size: int = PART_SIZE,
    level: int = 1,
    progress: Progress | None = None,
    on_part: Callable[[Path, Part], None] | None = None,
) -> tuple[Manifest, Path]:
    """Bundle ``size`` bytes of ``source`` into ``directory``; returns the manifest and its
    path (``PREFIX.manifest.xml``). ``on_part`` is told of each part as soon as it is written.
    """
    prefix = prefix or spec.name
    key_hex, iv_hex = crypto.new_key_and_iv()
    sink = _PartWriter(directory, prefix, part_size, on_part)
    stream = _BundleStream(
        crypto.Encryptor(bytes.fromhex(key_hex), bytes.fromhex(iv_hex)), sink, level
    )
    info = tarfile.TarInfo(spec.name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    # bufsize: tarfile's stream buffer slices itself bufsize bytes at a time (quadratic in
    # small steps), so it gets whole chunks.
    with tarfile.open(
        fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT, bufsize=CHUNK, copybufsize=CHUNK
    ) as tar:
        tar.addfile(info, _ProgressReader(source, progress))
    stream.finish()
    user_public = user_key.public_key() if user_key else None
    manifest = Manifest(
        architecture=spec.architecture,
        name=spec.name,
        user=spec.account_id,
        image_type=spec.image_type,
        digest=stream.digest.hexdigest(),
        size=size,
        bundled_size=sink.total,
        ec2_encrypted_key=crypto.encrypt_for(cloud_key, key_hex),
        ec2_encrypted_iv=crypto.encrypt_for(cloud_key, iv_hex),
        user_encrypted_key=crypto.encrypt_for(user_public, key_hex) if user_public else None,
        user_encrypted_iv=crypto.encrypt_for(user_public, iv_hex) if user_public else None,
        parts=sink.parts,
        kernel_id="true" if spec.image_type == "kernel" else spec.kernel_id,
        ramdisk_id="true" if spec.image_type == "ramdisk" else spec.ramdisk_id,
        block_device_mappings=dict(spec.block_device_mappings),
    )
    if user_key:
        manifest.signature = crypto.sign(user_key, manifest.signed_text())
    path = directory / f"{prefix}.manifest.xml"
    path.write_bytes(manifest.to_xml())
    return manifest, path


class _TarSource:
    """The tar stream: parts decrypted, gunzipped and hashed as they are read; each part's
    digest checked at its end."""

    def __init__(
        self,
        manifest: Manifest,
        parts: Iterable[Iterable[bytes]],
        decryptor: crypto.Decryptor,
        progress: Progress | None,
    ) -> None:
        self.digest = hashlib.sha1()
        self.total = 0
        self._chunks = self._plain(manifest, parts, decryptor, progress)
        self._chunk = memoryview(b"")

    def _fill(self) -> bool:
        """Make sure some bytes are at hand; False at the end of the stream."""
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self.digest.update(chunk)
            self.total += len(chunk)
            self._chunk = memoryview(chunk)
        return True

    def read_exact(self, size: int) -> bytes:
        """``size`` bytes (tar headers), or fewer at the end of the stream."""
        out = bytearray()
        while len(out) < size and self._fill():
            piece = self._chunk[: size - len(out)]
            out += piece
            self._chunk = self._chunk[len(piece) :]
        return bytes(out)

    def copy(self, out: BinaryIO, size: int) -> int:
        """Write up to ``size`` bytes to ``out`` straight from the decoded chunks."""
        written = 0
        while written < size and self._fill():
            piece = self._chunk[: size - written]
            out.write(piece)
            written += len(piece)
            self._chunk = self._chunk[len(piece) :]
        return written

    def skip(self, size: int) -> None:
        while size > 0 and self._fill():
            step = min(size, len(self._chunk))
            self._chunk = self._chunk[step:]
            size -= step

    def drain(self, limit: int) -> None:
        """Read to the end (so every digest is complete), refusing more than ``limit``."""
        drained = len(self._chunk)
        self._chunk = memoryview(b"")
        while self._fill():
            drained += len(self._chunk)
            self._chunk = memoryview(b"")
            if drained > limit:
                raise BundleError("the bundle holds more data after the image than a tar has")

    def _plain(
        self,
        manifest: Manifest,
        parts: Iterable[Iterable[bytes]],
        decryptor: crypto.Decryptor,
        progress: Progress | None,
    ) -> Iterator[bytes]:
        inflater = _Inflater()
        count = 0
        for part, chunks in zip(manifest.parts, parts, strict=False):
            count += 1
            digest = hashlib.sha1()
            it = iter(chunks)
            try:
                for chunk in it:
                    digest.update(chunk)
                    if progress:
                        progress(len(chunk))
                    yield from inflater.feed(decryptor.update(chunk))
            except (zlib.error, deflate.error, ValueError) as error:
                for chunk in it:
                    digest.update(chunk)
                _check_part(part, digest)
                raise BundleError(f"the bundle does not decode ({error})") from None
            _check_part(part, digest)
        if count != len(manifest.parts):
            raise BundleError(f"only {count} of {len(manifest.parts)} parts could be read")
        try:
            yield from inflater.feed(decryptor.finalize())
            yield from inflater.finish()
        except (zlib.error, deflate.error, ValueError) as error:
            raise BundleError(f"the bundle does not decode ({error})") from None


def _check_part(part: Part, digest: hashlib._Hash) -> None:
    actual = digest.hexdigest()
    if actual != part.digest:
        raise BundleError(
            f"part {part.filename} is corrupt: its SHA-1 is {actual}, "
            f"the manifest says {part.digest}"
        )


class _Inflater:
    """gunzip in bounded pieces (no decompression bomb), across concatenated members."""

    def __init__(self) -> None:
        self._z = deflate.decompressobj(31)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self._z.eof:
                data = self._z.unused_data + data
                if not data.strip(b"\0"):
                    return
                self._z = deflate.decompressobj(31)
            out = self._z.decompress(data, CHUNK)
            if out:
                yield out
            data = self._z.unconsumed_tail
            while not data and len(out) == CHUNK and not self._z.eof:
                out = self._z.decompress(b"", CHUNK)
                if out:
                    yield out
            if self._z.eof and self._z.unused_data:
                data = self._z.unused_data
                self._z = deflate.decompressobj(31)

    def finish(self) -> Iterator[bytes]:
        tail = self._z.flush()
        if tail:
            yield tail
        if not self._z.eof:
            raise BundleError("the compressed image is truncated")


def unbundle(
    manifest: Manifest,
    key: bytes,
    iv: bytes,
    parts: Iterable[Iterable[bytes]],
    out: BinaryIO,
    *,
    max_size: int | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the image of a bundle to ``out``; ``parts`` yields each part's chunks in order.

    Raises ``BundleError`` for a corrupt part, a wrong key, a bad archive, a digest or size
    that differs from the manifest, or an image larger than ``max_size``.
    """
    if manifest.cipher != "AES-128-CBC":
        raise BundleError(f"unsupported cipher {manifest.cipher}")
    source = _TarSource(manifest, parts, crypto.Decryptor(key, iv), progress)
    limit = manifest.size if max_size is None else min(manifest.size, max_size)
    size = _next_file(source)
    if size != manifest.size:
        raise BundleError(f"the image is {size} bytes, the manifest says {manifest.size}")
    if size > limit:
        raise BundleError(f"the image ({size} bytes) is larger than allowed ({limit})")
    written = source.copy(out, size)
    if written != manifest.size:
        raise BundleError("the image is truncated")
    source.drain(TRAILER_LIMIT)
    sha1 = manifest.digest_algorithm in ("SHA1", "SHA-1")
    if sha1 and source.digest.hexdigest() != manifest.digest:
        raise BundleError(
            f"the image's SHA-1 is {source.digest.hexdigest()}, the manifest says {manifest.digest}"
        )
    return written


def _next_file(source: _TarSource) -> int:
    """Read tar headers up to the first regular file; returns its size.

    Long-name (GNU) and pax headers are read past, a pax ``size`` record is honoured.
    The data is then streamed by the caller, without tarfile's buffering.
    """
    pax_size: int | None = None
    while True:
        block = source.read_exact(BLOCK)
        if len(block) < BLOCK or not block.strip(b"\0"):
            raise BundleError("the bundle's archive holds no image file")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise BundleError(f"the bundle does not hold a tar archive ({error})") from None
        padded = -(-info.size // BLOCK) * BLOCK
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
            if info.size > TRAILER_LIMIT:
                raise BundleError("the archive's pax header is too large")
            records = source.read_exact(padded)[: info.size]
            for record in records.split(b"\n"):
                _, _, field = record.partition(b" ")
                if field.startswith(b"size="):
                    pax_size = int(field[5:])
            continue
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            source.skip(padded)
            continue
        if info.type not in tarfile.REGULAR_TYPES:
            raise BundleError("the bundle's archive holds no image file")
        return pax_size if pax_size is not None else info.size


def decrypt_key(decrypt: Callable[[bytes], bytes], manifest: Manifest) -> tuple[bytes, bytes]:
    """The AES key and IV, decrypted with the cloud's private key."""
    try:
        key = crypto.key_bytes(decrypt(bytes.fromhex(manifest.ec2_encrypted_key)))
        iv = crypto.key_bytes(decrypt(bytes.fromhex(manifest.ec2_encrypted_iv)))
    except ValueError:
        raise BundleError(
            "the bundle's key was not encrypted with this cloud's certificate "
            "(bundle it with the certificate `karri cloud-cert` prints)"
        ) from None
    return key, iv
