"""``guarded(*roles)``: the one role check and error translation of every web handler.

Gradio exposes each event as an API endpoint that ``gradio_client`` can call directly, so the
role is checked on the server in every handler; hiding a tab is cosmetic. A handler's own
errors become one of two outcomes, posted to the caller's status panel (``StatusBoard``):

- a refusal (consent refused, a role or limit, bad input): the plain-language reason, what to
  do next and the ledger reference of the refused attempt; one log line, no traceback;
- a crash (anything else): "internal error, reference ..." with the traceback in the log
  under that reference.

Either way the handler raises ``gr.Error`` so that API clients get the message; its toast is
hidden because the page shows the panel instead.
"""

import functools
import html
import inspect
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from studio.errors import USER_FACING
from studio.users import Role, require_role

log = logging.getLogger(__name__)

# Ledger events that record a refused or stopped attempt, newest first wins as the reference.
_REFUSAL_EVENTS = ("render.refused", "render.failed", "credential.refused")

# What to do next, per error class name (the nearest class in the error's MRO wins). Names, not
# imports: the classes live in consent/, studio/ and models/, and some may move.
_NEXT_STEPS: dict[str, str] = {
    "PermissionDenied": "Ask an admin for an account with the role this needs.",
    "UnknownUser": "Ask an admin to check your account.",
    "LikenessMismatch": "Use a photo of the person the credential names, or ask the consent officer for a "
    "credential issued by the person in this photo.",
    "LikenessNotChecked": "Use a clear, front-facing photo of the person the credential names.",
    "ProjectNotCovered": "Ask the consent officer for a credential that covers project \u201c{project}\u201d, "
    "or choose the credential made for that project.",
    "PurposeNotCovered": "Ask the consent officer for a credential that covers the purpose \u201c{purpose}\u201d, "
    "or pick one of the purposes this credential lists.",
    "MediaNotCovered": "Ask the consent officer for a credential that covers video.",
    "DurationExceeded": "Use a shorter driving video (within the credential's maximum duration), or ask the "
    "consent officer for a credential that allows longer output.",
    "TermsExceeded": "Use a shorter driving video (within the credential's and the studio's limits).",
    "ConsentExpired": "Ask the consent officer for a current credential: the person must issue a new one.",
    "ConsentNotYetValid": "Wait until the credential's start date, or ask the consent officer about it.",
    "ConsentRevoked": "The person withdrew this consent: do not render them under it. Ask the consent officer "
    "whether a new credential exists.",
    "ConsentRevokedDuringRender": "The person withdrew this consent: do not render them under it.",
    "UnknownIssuer": "Check the issuer's identity, enrol their did:key under Enrol an issuer, then import again.",
    "IssuerNotEnrolled": "Check the issuer's identity, enrol their did:key under Enrol an issuer, then import again.",
    "SignatureInvalid": "The file was changed after it was signed: ask the person (or estate) for the original file.",
    "MalformedCredential": "This is not a valid consent credential file: ask the issuer for the original file.",
    "ReferencePhotoMismatch": "Upload the reference photo the credential was issued with, or none.",
    "DuplicateCredential": "It is already in the studio: find it in the credential list.",
    "LabelRequired": "Keep the visible \u201cAI-generated\u201d label on and render again.",
    "WatermarkNotConfirmed": "Render again; if it happens again, tell the studio admin (the output did not carry "
    "a readable watermark, so it was discarded).",
    "RenderCancelled": "Nothing to undo: start the render again when you are ready.",
    "VideoTooLarge": "Use a shorter or smaller video.",
    "MediaError": "Check the file (a photo or a video in a common format) and upload it again.",
    "LedgerBusy": "Try again in a moment.",
    "ConsentError": "Ask the consent officer to check this credential.",
}


@dataclass(frozen=True)
class Outcome:
    """What the status panel shows: a refusal, a crash, or a plain note."""

    kind: Literal["refused", "cancelled", "crash", "note"]
    reason: str
    next_step: str = ""
    reference: str = ""

    def to_html(self) -> str:
        colours = {"refused": ("#fff7e6", "#b35c00", "Refused"), "cancelled": ("#eef2f7", "#4a5f7a", "Cancelled"),
                   "crash": ("#fdecec", "#b00020", "Internal error"), "note": ("#eef6ee", "#2e7d32", "Done")}
        background, border, title = colours[self.kind]
        reason = self.reason.removeprefix("Refused: ") if self.kind == "refused" else self.reason
        rows = [f"<strong>{title}:</strong> {html.escape(reason)}"]
        if self.next_step:
            rows.append(f"<strong>What to do next:</strong> {html.escape(self.next_step)}")
        if self.reference:
            rows.append(f"<strong>Reference:</strong> <code>{html.escape(self.reference)}</code>")
        body = "<br>".join(rows)
        return (f'<div class="status-{self.kind}" role="status" style="background:{background};'
                f'border-left:6px solid {border};padding:10px 14px;border-radius:4px;color:#222">{body}</div>')


class StatusBoard:
    """The latest outcome per browser session, until the page's status panel takes it."""

    def __init__(self, *, max_sessions: int = 4096) -> None:
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, Outcome] = OrderedDict()
        self._max = max_sessions

    def post(self, session: str | None, outcome: Outcome) -> None:
        if not session:
            return  # an API call without a page: the raised message is its answer
        with self._lock:
            self._latest[session] = outcome
            self._latest.move_to_end(session)
            while len(self._latest) > self._max:
                self._latest.popitem(last=False)

    def take(self, session: str | None) -> Outcome | None:
        with self._lock:
            return self._latest.pop(session, None) if session else None


def next_step_for(exc: BaseException, facts: dict[str, Any]) -> str:
    """What to do next about ``exc``, filled in with the request's ``facts`` (project, purpose)."""
    for cls in type(exc).__mro__:
        template = _NEXT_STEPS.get(cls.__name__)
        if template is not None:
            return template.format_map(_Facts(facts))
    return ""


class _Facts(dict):
    def __missing__(self, key: str) -> str:
        return "this"


def refusal_message(exc: BaseException, consent_format: str = "{}") -> str:
    """The plain-language reason for ``exc``; a consent or motion refusal through ``consent_format``."""
    from consent.errors import ConsentError
    from models.errors import MotionError

    text = exc.user_message()  # type: ignore[attr-defined]
    return consent_format.format(text) if isinstance(exc, (ConsentError, MotionError)) else text


def guarded(*roles: Role, consent_format: str = "{}") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a handler method of an object with a ``ctx`` (a ``WebContext``): the caller must
    have one of ``roles`` (admin always may). The method takes ``request: gr.Request`` and a
    keyword-only ``user`` (the checked ``studio.users.User``), which Gradio does not see.
    ``consent_format`` words a consent or motion refusal (``{}``: its message).

    A refusal or crash is posted to the caller's status panel and raised as ``gr.Error``.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        if "request" not in signature.parameters or "user" not in signature.parameters:
            raise TypeError(f"{fn.__qualname__}: a guarded handler takes `request` and a keyword-only `user`")
        public = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "user"])

        @functools.wraps(fn)
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = public.bind(self, *args, **kwargs)
            request = bound.arguments["request"]
            ctx = self.ctx
            username = getattr(request, "username", None)
            session = getattr(request, "session_hash", None)
            mark: int | None = None
            try:
                mark = ctx.ledger.head_seq()
                user = require_role(ctx.ledger, username, *roles)
                return fn(*bound.args, user=user, **bound.kwargs)
            except gr.Error as exc:  # the handler's own word on bad input: already plain language
                log.warning("%s refused for %s: %s", fn.__name__, username, exc.message)
                ctx.board.post(session, Outcome("refused", str(exc.message)))
                raise gr.Error(exc.message, visible=False, print_exception=False) from None
            except USER_FACING as exc:
                message = refusal_message(exc, consent_format)
                reference = _ledger_reference(ctx.ledger, mark, username)
                log.warning("%s refused for %s: %s: %s%s", fn.__name__, username, type(exc).__name__,
                            exc.user_message(), f" ({reference})" if reference else "")
                kind = "cancelled" if type(exc).__name__ == "RenderCancelled" else "refused"
                ctx.board.post(session, Outcome(kind, message, next_step_for(exc, bound.arguments),
                                                reference or "no ledger record for this refusal"))
                raise gr.Error(message, visible=False, print_exception=False) from None
            except Exception:
                reference = uuid.uuid4().hex[:12]
                log.exception("%s failed for %s (internal error, reference %s)", fn.__name__, username, reference)
                ctx.board.post(session, Outcome("crash", "Something went wrong inside the studio; nothing was "
                                                "delivered.", "Tell the studio admin this reference.", reference))
                raise gr.Error(f"internal error, reference {reference}", visible=False, print_exception=False) from None

        # Gradio reads the signature (inputs, then ``request`` and ``progress``) and the request's
        # type from these; ``user`` is ours.
        handler.__signature__ = public  # type: ignore[attr-defined]
        handler.__annotations__ = {"request": gr.Request}
        return handler

    return decorate


def _ledger_reference(ledger: Any, mark: int | None, username: str | None) -> str:
    """The newest refusal recorded for ``username`` since event ``mark``, as words, or ''."""
    if mark is None:
        return ""
    try:
        events = ledger.events(after_seq=mark, limit=500)
    except USER_FACING:  # the ledger itself is what failed
        return ""
    found = [e for e in events if e.kind in _REFUSAL_EVENTS and e.actor == username]
    if not found:
        return ""
    event = found[-1]
    render_id = event.data.get("render_id")
    what = f"render {render_id}" if render_id else event.kind
    return f"{what}, ledger event #{event.seq} ({event.kind})"
