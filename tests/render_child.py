"""A render in its own process, for the crash and shared-data-folder tests.

    python render_child.py HOME CREDENTIAL PHOTO CLIP MODE SIGNALS [HEARTBEAT_SECONDS]

MODE ``wait``: once animation starts, create ``SIGNALS/started`` and wait for ``SIGNALS/go``
(so another process can act while this render is in progress; or the test kills it here).
MODE ``die-after-commit``: SIGKILL itself at the first move of the signed output into place,
which comes right after the ledger commit (the crash window of issue 20, item 7).
Prints the render id as the last line on success; exits 3 with the error otherwise.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def main(home: str, credential: str, photo: str, clip: str, mode: str, signals: str, heartbeat: str = "5") -> int:
    from studio.config import StudioConfig
    from studio.render.pipeline import RenderPipeline, RenderRequest

    flags = Path(signals)
    if mode == "die-after-commit":
        real_replace = os.replace

        def replace(src, dst):  # noqa: ANN001 - os.replace's own signature
            if Path(src).name == "signed.mp4":
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)

        os.replace = replace

    def progress(stage: str, done: int, total: int | None) -> None:
        if mode == "wait" and stage == "animating" and not (flags / "started").exists():
            (flags / "started").touch()
            deadline = time.monotonic() + 300
            while not (flags / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    pipeline = RenderPipeline.from_config(StudioConfig(home=Path(home)), heartbeat_seconds=float(heartbeat))
    request = RenderRequest(photo=Path(photo), driving=Path(clip), credential_id=credential, purpose="education",
                            project="Orbit (demo documentary)", operator="child")
    try:
        result = pipeline.render(request, progress=progress)
    except Exception as exc:  # noqa: BLE001 - report any failure to the test
        print(f"render failed: {type(exc).__name__}: {exc}", flush=True)
        return 3
    print(result.render_id, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
