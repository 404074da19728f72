"""Studio configuration: the only module that reads environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError

_DEFAULT_HOME = Path.home() / ".avatar-studio"


DLIB_FACE_CEILING = 0.6  # dlib's published same-person threshold: the loosest face match the studio accepts


class ConfigError(StudioError):
    """An environment variable holds a value the studio refuses to run with."""


def _face_ceiling(text: str | None) -> float:
    """STUDIO_MAX_FACE_DISTANCE: may only make the face match stricter than dlib's 0.6."""
    if text is None or not text.strip():
        return DLIB_FACE_CEILING
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= DLIB_FACE_CEILING:  # also refuses nan
        raise ConfigError(
            f"STUDIO_MAX_FACE_DISTANCE must be a number above 0 and at most {DLIB_FACE_CEILING} "
            f"(it can only make face matching stricter), got {text[:40]!r}"
        )
    return value


def _device(text: str | None) -> str | None:
    """STUDIO_DEVICE: cpu or cuda (unset: cuda when present)."""
    if text is None or not text.strip():
        return None
    if text.strip() not in ("cpu", "cuda"):
        raise ConfigError(f"STUDIO_DEVICE must be cpu or cuda, got {text[:40]!r}")
    return text.strip()


@dataclass(frozen=True, kw_only=True)
class StudioConfig:
    """Everything the studio needs to know about where it lives and how it runs.

    ``home`` holds the SQLite ledger, the studio's keys and certificates, and rendered
    outputs. ``database_url`` overrides the SQLite file (e.g. PostgreSQL).
    """

    home: Path = _DEFAULT_HOME
    database_url: str | None = None
    fomm_checkpoint: Path | None = None
    key_passphrase: str | None = None
    keep_uploads_seconds: int = 600  # uploads are deleted this long after their last use (0: at once)
    max_concurrent_renders: int = 1
    max_face_distance: float = DLIB_FACE_CEILING  # the studio's ceiling on a credential's maxDistance
    login_lockout_failures: int = 10  # failed logins that lock an account until an admin unlocks it
    login_delay_seconds: float = 1.0  # first wait after repeated failures; doubles with each further one
    login_log_window_seconds: float = 300.0  # failed logins are logged as counts per window this long
    host: str = "127.0.0.1"
    port: int = 7860
    # The render farm (docs/farm.md): without a broker URL renders run in the web process.
    broker_url: str | None = None  # STUDIO_BROKER_URL, e.g. redis://127.0.0.1:6379/0
    work_dir_override: Path | None = None  # STUDIO_WORK_DIR: a worker's own work folder (default <home>/work)
    max_render_seconds: int = 3600  # the longest render the farm allows; the queue's visibility timeout exceeds it
    farm_max_claims: int = 3  # workers that may take a render over before it is failed
    device: str | None = None  # STUDIO_DEVICE: cpu | cuda for the FOMM animator (default: cuda when present)

    @classmethod
    def from_env(cls, *, home: Path | str | None = None) -> StudioConfig:
        env = os.environ
        chosen_home = Path(home or env.get("STUDIO_HOME") or _DEFAULT_HOME).expanduser().resolve()
        ckpt = env.get("STUDIO_FOMM_CHECKPOINT")
        return cls(
            home=chosen_home,
            database_url=env.get("DATABASE_URL") or None,
            fomm_checkpoint=Path(ckpt).expanduser() if ckpt else None,
            key_passphrase=env.get("STUDIO_KEY_PASSPHRASE") or None,
            keep_uploads_seconds=int(env.get("STUDIO_KEEP_UPLOADS_SECONDS", "600")),
            max_concurrent_renders=int(env.get("STUDIO_MAX_CONCURRENT_RENDERS", "1")),
            max_face_distance=_face_ceiling(env.get("STUDIO_MAX_FACE_DISTANCE")),
            login_lockout_failures=int(env.get("STUDIO_LOGIN_LOCKOUT_FAILURES", "10")),
            login_delay_seconds=float(env.get("STUDIO_LOGIN_DELAY_SECONDS", "1.0")),
            login_log_window_seconds=float(env.get("STUDIO_LOGIN_LOG_WINDOW_SECONDS", "300")),
            host=env.get("STUDIO_HOST", "127.0.0.1"),
            port=int(env.get("STUDIO_PORT", "7860")),
            broker_url=env.get("STUDIO_BROKER_URL") or None,
            work_dir_override=Path(env["STUDIO_WORK_DIR"]).expanduser().resolve() if env.get("STUDIO_WORK_DIR") else None,
            max_render_seconds=int(env.get("STUDIO_MAX_RENDER_SECONDS", "3600")),
            farm_max_claims=int(env.get("STUDIO_FARM_MAX_CLAIMS", "3")),
            device=_device(env.get("STUDIO_DEVICE")),
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The ledger database URL: ``DATABASE_URL`` or the SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'ledger.sqlite3'}"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite ledger file, or None when ``database_url`` names another database."""
        if self.database_url:
            from sqlalchemy.engine import make_url

            url = make_url(self.database_url)
            if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
                return None
            return Path(url.database)
        return self.home / "ledger.sqlite3"

    @property
    def work_dir(self) -> Path:
        """Where renders are made before they are moved into ``outputs`` (each farm worker its own)."""
        return self.work_dir_override or self.home / "work"

    @property
    def farm_inputs_dir(self) -> Path:
        """Inputs of queued farm renders, on the shared data folder (deleted when the render ends)."""
        return self.home / "farm-inputs"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "outputs"

    @property
    def exports_dir(self) -> Path:
        """Ledger exports made for download in the web app (deleted after the keep time)."""
        return self.home / "exports"
