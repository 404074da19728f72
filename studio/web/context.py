"""``WebContext``: what every tab module of the web app gets (see ``studio/web/app.py``).

A tab module has a ``build_<name>_tab(ctx)`` called inside the Blocks; it lays out its
components, wires its events with ``ctx.wire`` (refusals and crashes then reach the status
panel) and registers what its role sees first with ``ctx.on_first_screen``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from studio.config import StudioConfig
from studio.ledger import Ledger
from studio.render.pipeline import RenderPipeline
from studio.users import Role, User
from studio.web.guard import Outcome, StatusBoard
from studio.web.janitor import UploadJanitor


@dataclass
class FirstScreen:
    """Data a tab loads when a user with one of ``roles`` (or an admin) opens the page."""

    roles: tuple[Role, ...]
    load: Callable[[User], Any]  # returns the value(s) for ``outputs``; only called for those roles
    outputs: list[gr.components.Component]


@dataclass
class WebContext:
    pipeline: RenderPipeline
    dispatcher: Any  # runs renders here or on the farm (studio.render.farm.dispatcher_for)
    janitor: UploadJanitor
    exports: Path  # owner-only folder for files handed to users (ledger exports, reports)
    board: StatusBoard = field(default_factory=StatusBoard)
    status: gr.HTML | None = None  # the status panel, made by build_app before the tabs
    first_screens: list[FirstScreen] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        return self.pipeline.ledger

    @property
    def config(self) -> StudioConfig:
        return self.pipeline.config

    def wire(
        self,
        trigger: Callable[..., Any],
        fn: Callable[..., Any],
        inputs: Any,
        outputs: Any,
        *,
        api_name: str | bool,
        clears_status: bool = True,
        **kwargs: Any,
    ) -> Any:
        """``trigger(fn, inputs, outputs, ...)`` (e.g. ``button.click``) with its refusal or crash
        shown in the status panel; a success clears the panel when ``clears_status``."""
        event = trigger(fn, inputs, outputs, api_name=api_name, **kwargs)
        # The failed event's outputs are written too (unchanged), which takes their "Error" badges off.
        shown = [c for c in _as_list(outputs) if c is not self.status]

        def show_outcome(request: gr.Request) -> list[Any]:
            outcome = self.board.take(request.session_hash)
            return [gr.update() if outcome is None else outcome.to_html(), *(gr.update() for _ in shown)]

        event.failure(show_outcome, None, [self.status, *shown], api_name=False, queue=False)
        if clears_status:
            event.success(self._clear_status, None, self.status, api_name=False, queue=False)
        return event

    def on_first_screen(self, roles: Sequence[Role], load: Callable[[User], Any], outputs: list[Any]) -> None:
        """Load ``outputs`` with ``load(user)`` when a user with one of ``roles`` opens the page."""
        self.first_screens.append(FirstScreen(tuple(roles), load, list(outputs)))

    def _clear_status(self) -> str:
        return ""

    def note(self, text: str) -> str:
        """A plain 'done' note for the status panel."""
        return Outcome("note", text).to_html()


def _as_list(outputs: Any) -> list[Any]:
    if outputs is None:
        return []
    return list(outputs) if isinstance(outputs, (list, tuple, set)) else [outputs]
