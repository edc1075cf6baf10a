"""The bundle manifest (version 2007-10-10), as euca2ools and ec2-ami-tools write it.

A manifest names the image (type, architecture, kernel and ramdisk), its size, the SHA-1 of
the tar stream, the AES key and IV encrypted for the cloud (``ec2_encrypted_*``) and for the
user (``user_encrypted_*``), the parts with their SHA-1s, and a signature: RSA-SHA1 over the
serialized ``<machine_configuration>`` and ``<image>`` elements, hex-encoded. It is parsed
with defusedxml, so entity tricks are refused rather than expanded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from karri.numbers import natural

MANIFEST_VERSION = "2007-10-10"
IMAGE_TYPES = ("machine", "kernel", "ramdisk")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
HEX = re.compile(r"^[0-9a-fA-F]+$")


class ManifestError(ValueError):
    """The manifest cannot be used; the message says why, for the client."""


@dataclass(frozen=True)
class Part:
    filename: str
    digest: str  # lower-case hex SHA-1 of the part's bytes


@dataclass
class Manifest:
    architecture: str
    name: str
    user: str
    image_type: str
    digest: str
    size: int
    bundled_size: int
    ec2_encrypted_key: str
    ec2_encrypted_iv: str
    parts: list[Part]
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    block_device_mappings: dict[str, str] = field(default_factory=dict)  # virtual -> device
    product_codes: list[str] = field(default_factory=list)
    user_encrypted_key: str | None = None
    user_encrypted_iv: str | None = None
    digest_algorithm: str = "SHA1"
    cipher: str = "AES-128-CBC"
    signature: str = ""
    bundler: tuple[str, str, str] = ("karri", "0.1.0", "0")

    def machine_configuration_xml(self) -> str:
        out = [f"<machine_configuration><architecture>{escape(self.architecture)}</architecture>"]
        # Eucalyptus marks kernel and ramdisk bundles with kernel_id/ramdisk_id "true".
        if self.kernel_id:
            out.append(f"<kernel_id>{escape(self.kernel_id)}</kernel_id>")
        if self.ramdisk_id:
            out.append(f"<ramdisk_id>{escape(self.ramdisk_id)}</ramdisk_id>")
        if self.image_type == "machine" and self.block_device_mappings:
            out.append("<block_device_mapping>")
            for virtual, device in sorted(self.block_device_mappings.items()):
                out.append(
                    f"<mapping><virtual>{escape(virtual)}</virtual>"
                    f"<device>{escape(device)}</device></mapping>"
                )
            out.append("</block_device_mapping>")
        if self.image_type == "machine" and self.product_codes:
            codes = "".join(f"<product_code>{escape(c)}</product_code>" for c in self.product_codes)
            out.append(f"<product_codes>{codes}</product_codes>")
        out.append("</machine_configuration>")
        return "".join(out)

    def image_xml(self) -> str:
        algorithm = quoteattr(self.cipher)
        out = [
            f"<image><name>{escape(self.name)}</name><user>{escape(self.user)}</user>",
            f"<type>{self.image_type}</type>",
            f"<digest algorithm={quoteattr(self.digest_algorithm)}>{self.digest}</digest>",
            f"<size>{self.size}</size><bundled_size>{self.bundled_size}</bundled_size>",
            f"<ec2_encrypted_key algorithm={algorithm}>"
            f"{self.ec2_encrypted_key}</ec2_encrypted_key>",
        ]
        if self.user_encrypted_key:
            out.append(
                f"<user_encrypted_key algorithm={algorithm}>"
                f"{self.user_encrypted_key}</user_encrypted_key>"
            )
        out.append(f"<ec2_encrypted_iv>{self.ec2_encrypted_iv}</ec2_encrypted_iv>")
        if self.user_encrypted_iv:
            out.append(f"<user_encrypted_iv>{self.user_encrypted_iv}</user_encrypted_iv>")
        out.append(f'<parts count="{len(self.parts)}">')
        for index, part in enumerate(self.parts):
            out.append(
                f'<part index="{index}"><filename>{escape(part.filename)}</filename>'
                f'<digest algorithm="SHA1">{part.digest}</digest></part>'
            )
        out.append("</parts></image>")
        return "".join(out)

    def signed_text(self) -> bytes:
        """What the signature covers, exactly as written into the manifest."""
        return (self.machine_configuration_xml() + self.image_xml()).encode()

    def to_xml(self) -> bytes:
        name, version, release = self.bundler
        return (
            f"<manifest><version>{MANIFEST_VERSION}</version>"
            f"<bundler><name>{escape(name)}</name><version>{escape(version)}</version>"
            f"<release>{escape(release)}</release></bundler>"
            f"{self.machine_configuration_xml()}{self.image_xml()}"
            f"<signature>{self.signature}</signature></manifest>"
        ).encode()


def signed_text_of(document: bytes) -> bytes | None:
    """The signed span of a manifest as it was written (for verifying a signature)."""
    start = document.find(b"<machine_configuration")
    end = document.find(b"</image>")
    if start < 0 or end < 0:
        return None
    return document[start : end + len(b"</image>")]


def parse(document: bytes) -> Manifest:
    """Read a manifest; every problem is a ``ManifestError`` naming it."""
    if len(document) > MAX_MANIFEST_BYTES:
        raise ManifestError("the manifest is larger than 4 MiB")
    try:
        root = ElementTree.fromstring(document)
    except DefusedXmlException:
        raise ManifestError("the manifest uses forbidden XML constructs (entities)") from None
    except Exception as error:
        raise ManifestError(f"the manifest is not valid XML ({error})") from None
    if root.tag != "manifest":
        raise ManifestError(f"the document is not a bundle manifest (root <{root.tag}>)")
    config = _child(root, "machine_configuration")
    image = _child(root, "image")
    kernel_id = _text(config, "kernel_id")
    ramdisk_id = _text(config, "ramdisk_id")
    image_type = _image_type(_text(image, "type"), kernel_id, ramdisk_id)
    if image_type != "machine":
        kernel_id = ramdisk_id = None
    digest = _child(image, "digest")
    key = _child(image, "ec2_encrypted_key")
    return Manifest(
        architecture=_required(config, "architecture"),
        name=_required(image, "name"),
        user=_text(image, "user") or "",
        image_type=image_type,
        digest=_hex(digest.text, "image digest").lower(),
        digest_algorithm=(digest.get("algorithm") or "SHA1").upper(),
        size=_integer(image, "size"),
        bundled_size=_integer(image, "bundled_size"),
        ec2_encrypted_key=_hex(key.text, "ec2_encrypted_key"),
        ec2_encrypted_iv=_hex(_required(image, "ec2_encrypted_iv"), "ec2_encrypted_iv"),
        user_encrypted_key=_text(image, "user_encrypted_key"),
        user_encrypted_iv=_text(image, "user_encrypted_iv"),
        cipher=(key.get("algorithm") or "AES-128-CBC").upper(),
        parts=_parts(_child(image, "parts")),
        kernel_id=kernel_id,
        ramdisk_id=ramdisk_id,
        block_device_mappings=_mappings(config),
        product_codes=[(c.text or "").strip() for c in config.iter("product_code")],
        signature=(_text(root, "signature") or ""),
        bundler=_bundler(root),
    )


def _image_type(declared: str | None, kernel_id: str | None, ramdisk_id: str | None) -> str:
    if declared:
        if declared not in IMAGE_TYPES:
            raise ManifestError(f"unknown image type '{declared}' (machine, kernel or ramdisk)")
        return declared
    if kernel_id in ("true", "yes"):
        return "kernel"
    if ramdisk_id in ("true", "yes"):
        return "ramdisk"
    return "machine"


def _parts(element: Element) -> list[Part]:
    try:
        count = int(element.get("count", ""))
    except ValueError:
        raise ManifestError("<parts> has no valid count") from None
    if not 1 <= count <= 100_000:
        raise ManifestError(f"a bundle has 1 to 100000 parts, not {count}")
    found: list[Part | None] = [None] * count
    for node in element.findall("part"):
        try:
            index = int(node.get("index", ""))
        except ValueError:
            raise ManifestError("a <part> has no valid index") from None
        if not 0 <= index < count or found[index] is not None:
            raise ManifestError(f"part index {index} is out of range or repeated")
        filename = _required(node, "filename")
        if "/" in filename or filename in (".", ".."):
            raise ManifestError(f"part file name '{filename}' must not contain '/'")
        found[index] = Part(filename, _hex(_required(node, "digest"), "part digest").lower())
    missing = [str(i) for i, part in enumerate(found) if part is None]
    if missing:
        raise ManifestError(f"the manifest lists no part {', '.join(missing[:5])}")
    return [p for p in found if p is not None]


def _mappings(config: Element) -> dict[str, str]:
    mappings: dict[str, str] = {}
    for node in config.iter("mapping"):
        virtual, device = _text(node, "virtual"), _text(node, "device")
        if virtual and device:
            mappings[virtual] = device
    return mappings


def _bundler(root: Element) -> tuple[str, str, str]:
    node = root.find("bundler")
    if node is None:
        return ("", "", "")
    return (_text(node, "name") or "", _text(node, "version") or "", _text(node, "release") or "")


def _child(parent: Element, tag: str) -> Element:
    node = parent.find(tag)
    if node is None:
        raise ManifestError(f"the manifest has no <{tag}>")
    return node


def _text(parent: Element, tag: str) -> str | None:
    node = parent.find(tag)
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def _required(parent: Element, tag: str) -> str:
    value = _text(parent, tag)
    if value is None:
        raise ManifestError(f"the manifest has no <{tag}>")
    return value


def _integer(parent: Element, tag: str) -> int:
    value = _required(parent, tag)
    number = natural(value)
    if number is None:
        raise ManifestError(f"<{tag}> is not a number: {value}")
    return number


def _hex(value: str | None, what: str) -> str:
    value = (value or "").strip()
    if not value or not HEX.match(value):
        raise ManifestError(f"the {what} is not hexadecimal")
    return value
