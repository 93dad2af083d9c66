"""Podman for the container tests: its settings on this machine, the images they run, and
commands whose failures read well.

What this machine needs (/work/shared/notes/containers-here.md, measured here): runc and
cgroupfs, a file events log and ulimits within the hard limits, all in a containers.conf named
by CONTAINERS_CONF (nothing under /etc changes); no image can be pulled, so the base image is
made from Debian's packages with mmdebstrap, from the sources this machine's apt uses.
"""

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from config import PROJECT_DIR

HERE = Path(__file__).resolve().parent
APT_DIRECTORY = Path("/etc/apt")
# The host's CA bundle, lent to the build's RUN steps (pip) and never stored in the image.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

APP_IMAGE = "localhost/catalog:test"
POSTGRES_IMAGE = "localhost/catalog-test-postgres:15"

CONTAINERS_CONF = """\
# Written by tests/container for `make test-container`; named by CONTAINERS_CONF.
[containers]
# podman's default ulimits exceed this machine's hard limits.
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]

[engine]
# crun 1.8 refuses this machine's hybrid cgroups; there is no systemd.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

# The interpreter, venv and pip, as in the official python images; no documentation (as the
# slim ones), which keeps the service's image well under its 350 MB.
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
BASE_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


class CommandFailed(AssertionError):
    pass


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path = PROJECT_DIR,
) -> subprocess.CompletedProcess[str]:
    """Run `command`; when `check`, a non-zero exit fails with the command and its output."""
    try:
        result = subprocess.run(
            list(command),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"`{shlex.join(command)}` took over {timeout} s") from exc
    if check and result.returncode != 0:
        raise CommandFailed(
            f"`{shlex.join(command)}` exited {result.returncode}\n"
            f"--- stdout (end) ---\n{result.stdout[-4000:]}\n"
            f"--- stderr (end) ---\n{result.stderr[-4000:]}"
        )
    return result


@dataclass(frozen=True)
class Podman:
    """podman and podman-compose with this machine's settings (`env` names CONTAINERS_CONF)."""

    env: Mapping[str, str]
    compose_command: str

    def __call__(
        self, *arguments: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(("podman", *arguments), env=self.env, timeout=timeout, check=check)

    def compose(
        self,
        project: str,
        *arguments: str,
        environment: Mapping[str, str] | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """podman-compose on compose.yaml with the test's override, as project `project`; the
        project's own .env (a developer's settings) is left out, `environment` is passed in."""
        files = ("-f", "compose.yaml", "-f", str(HERE / "compose.test.yaml"))
        options = ("--project-name", project, "--env-file", os.devnull, *files)
        return run(
            (self.compose_command, *options, *arguments),
            env={**self.env, **(environment or {})},
            timeout=timeout,
            check=check,
        )

    def image_exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0

    def build(self, image: str, context: Path, *, base_image: str, timeout: float = 900) -> None:
        """Build `context`'s Containerfile on `base_image`, never pulling; layers are cached."""
        ca_mount = ("--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro") if CA_BUNDLE.is_file() else ()
        self(
            "build",
            # Docker's format: OCI images have no HEALTHCHECK.
            "--format=docker",
            "--pull=never",
            f"--build-arg=BASE_IMAGE={base_image}",
            *ca_mount,
            "--tag",
            image,
            str(context),
            timeout=timeout,
        )


def podman_compose() -> str | None:
    """podman-compose from .ci/install-container-tools' environment, else from PATH."""
    tools = os.environ.get("CONTAINER_TOOLS_DIR")
    if tools and (Path(tools) / "bin" / "podman-compose").is_file():
        return str(Path(tools) / "bin" / "podman-compose")
    return shutil.which("podman-compose")


def missing_tools() -> list[str]:
    tools = ["podman", "mmdebstrap"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if podman_compose() is None:
        missing.append("podman-compose")
    return missing


def codename() -> str:
    """This machine's Debian release (bookworm): the base image is made from the same one."""
    fields = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    return fields["VERSION_CODENAME"].strip('"')


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 `.sources` file: {lower-case field: value}."""
    stanza: dict[str, str] = {}
    field = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, field = {}, ""
        elif line[0].isspace() and field:
            stanza[field] += " " + line.strip()
        elif ":" in line:
            field, value = line.split(":", 1)
            field = field.strip().lower()
            stanza[field] = value.strip()


def apt_sources(release: str, apt_directory: Path = APT_DIRECTORY) -> list[str]:
    """This machine's apt sources for `release` and its suites (release-updates,
    release-security), as one-line entries for mmdebstrap; other repositories are left out."""

    def wanted(suite: str) -> bool:
        return suite == release or suite.startswith(f"{release}-")

    entries: list[str] = []
    for path in sorted((apt_directory / "sources.list.d").glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text()):
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in stanza.get("types", "").split():
                continue
            components = stanza.get("components", "main")
            for uri in stanza.get("uris", "").split():
                for suite in stanza.get("suites", "").split():
                    if wanted(suite):
                        entries.append(f"deb {uri} {suite} {components}")
    one_line_files = [apt_directory / "sources.list"]
    one_line_files += sorted((apt_directory / "sources.list.d").glob("*.list"))
    for path in one_line_files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            # `deb [options] uri suite component...`; the options are the host's own.
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and wanted(words[2]):
                entries.append(" ".join(words))
    return entries


def build_base_image(podman: Podman, image: str, workdir: Path) -> None:
    """A Debian image with python3, made with mmdebstrap from this machine's apt sources and
    imported into podman as `image`; pip installs into it as into the official images."""
    release = codename()
    sources = apt_sources(release)
    if not sources:
        raise CommandFailed(f"{APT_DIRECTORY} has no source for {release}: nothing for mmdebstrap")
    rootfs = workdir / "rootfs.tar"
    run(
        (
            "mmdebstrap",
            "--variant=apt",
            f"--include={BASE_PACKAGES}",
            *(f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS),
            '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
            release,
            str(rootfs),
            *sources,
        ),
        timeout=900,
    )
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    podman("import", "--change", f"ENV PATH={path}", str(rootfs), image, timeout=300)
    rootfs.unlink()
