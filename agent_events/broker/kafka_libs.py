"""Apache Kafka's runtime classpath, fetched from Maven Central once per version.

Layout of the cache (default ``~/.cache/agent-events``, or ``$AGENT_EVENTS_CACHE_DIR``)::

    kafka-<version>/pom.xml      the one-file project Maven resolves
    kafka-<version>/libs/*.jar   the broker's runtime classpath
    kafka-<version>/.complete    stamp written after a successful fetch
    kafka-<version>.lock         flock held while fetching
    m2/                          Maven's local repository

Guarantees: a ``libs`` folder with a stamp is complete and is used without running Maven;
two processes fetching the same version at once wait for each other instead of writing the
same jars twice (the second finds the stamp and returns).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent_events.agent_runtime.errors import BrokerSetupError
from agent_events.broker.tools import find_maven

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "DEFAULT_LOG4J_VERSION",
    "KafkaLibs",
    "default_cache_dir",
    "ensure_kafka_libs",
    "is_cached",
    "render_pom",
]

DEFAULT_KAFKA_VERSION = "4.1.1"
DEFAULT_LOG4J_VERSION = "2.24.3"
_FETCH_TIMEOUT_S = 900.0

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.agent-events</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <properties>
    <kafka.version>{kafka_version}</kafka.version>
    <log4j.version>{log4j_version}</log4j.version>
  </properties>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${{kafka.version}}</version></dependency>
    <!-- the broker logs through slf4j 1.7: without this binding it logs nothing -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${{log4j.version}}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${{log4j.version}}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>${{log4j.version}}</version></dependency>
  </dependencies>
  <build><plugins><plugin><groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin></plugins></build>
</project>
"""


@dataclass(frozen=True, slots=True)
class KafkaLibs:
    """A complete classpath folder for one Kafka version."""

    version: str
    libs_dir: Path
    fetched: bool
    """True if this call ran Maven, False if the cached copy was used."""

    @property
    def classpath(self) -> str:
        """The ``-cp`` argument for ``java`` (a wildcard over the folder)."""
        return f"{self.libs_dir}/*"


def default_cache_dir() -> Path:
    """``$AGENT_EVENTS_CACHE_DIR`` or ``~/.cache/agent-events``."""
    env = os.environ.get("AGENT_EVENTS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agent-events"


def render_pom(kafka_version: str, log4j_version: str = DEFAULT_LOG4J_VERSION) -> str:
    """The pom that resolves ``kafka_2.13`` plus the log4j binding the broker logs through."""
    return _POM.format(kafka_version=kafka_version, log4j_version=log4j_version)


def is_cached(version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None) -> bool:
    """True if the jars of ``version`` are complete in the cache (no Maven run needed)."""
    return ((cache_dir or default_cache_dir()) / f"kafka-{version}" / ".complete").is_file()


async def ensure_kafka_libs(
    version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None
) -> KafkaLibs:
    """Return the cached classpath for ``version``, running Maven first if it is missing.

    Raises ToolMissing if Maven is needed and absent, BrokerSetupError if Maven fails
    (with the tail of its output).
    """
    return await asyncio.to_thread(_ensure_blocking, version, cache_dir or default_cache_dir())


def _ensure_blocking(version: str, cache_dir: Path) -> KafkaLibs:
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    stamp = home / ".complete"
    if stamp.is_file():
        return KafkaLibs(version, libs, fetched=False)
    home.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f"kafka-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if stamp.is_file():
                return KafkaLibs(version, libs, fetched=False)
            _run_maven(version, home, libs, cache_dir / "m2")
            stamp.write_text(f"{version}\n")
            return KafkaLibs(version, libs, fetched=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_maven(version: str, home: Path, libs: Path, m2: Path) -> None:
    mvn = find_maven()
    (home / "pom.xml").write_text(render_pom(version))
    argv = [
        mvn,
        "-B",
        "-q",
        "-ntp",
        f"-Dmaven.repo.local={m2}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    try:
        out = subprocess.run(
            argv,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=_FETCH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerSetupError(
            f"Maven did not fetch Apache Kafka {version} within {_FETCH_TIMEOUT_S:.0f} s; "
            "check network access to the Maven repository and retry"
        ) from exc
    if out.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-30:])
        raise BrokerSetupError(
            f"Maven could not fetch Apache Kafka {version} (exit {out.returncode}); "
            f"is the version right and the Maven repository reachable?\n{tail}"
        )
