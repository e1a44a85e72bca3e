"""Tools: typed Python functions the brain can call, and the fenced runner that calls them.

A tool is a plain (async or sync) function whose first parameter is the environment it acts
on; the rest are its arguments, and the JSON schema the language model sees is built from
their types and the docstring. The :class:`ToolRunner` is what makes tool calls safe on a
live call: a side-effecting tool asked for by a reply that was since discarded is refused,
one that has started always finishes and is recorded, and repeating one within a call
returns the first result instead of doing it twice.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from frontdesk.brain.base import ToolCall, ToolResult
from frontdesk.store.records import CallStore

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """Raised by a tool to refuse or fail in words meant for the brain ("that slot is taken")."""


class ToolArgumentError(ValueError):
    """The arguments of a tool call do not fit the tool; the message names the bad ones."""


def _docstring_parts(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The summary paragraph and the per-argument descriptions of a Google-style docstring."""
    doc = inspect.getdoc(function) or ""
    summary_lines: list[str] = []
    arguments: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters):", stripped):
            section = "args"
            continue
        if re.fullmatch(r"[A-Z][A-Za-z ]*:", stripped) and not line.startswith(" "):
            section = "other"  # Returns:, Raises:, ...
            continue
        if section == "summary":
            if not stripped and summary_lines:
                section = "body"
            elif stripped:
                summary_lines.append(stripped)
        elif section == "args" and stripped:
            match = re.match(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if match and not line.startswith("        "):
                current = match.group(1)
                arguments[current] = match.group(2)
            elif current is not None:
                arguments[current] = f"{arguments[current]} {stripped}".strip()
    return " ".join(summary_lines), arguments


def _tidy_schema(node: Any) -> Any:
    """Make pydantic's schema plain for language models: no titles, and ``X | None = None``
    shown as an optional ``X`` instead of an ``anyOf`` with null."""
    if isinstance(node, list):
        return [_tidy_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    tidy: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "properties":
            tidy[key] = {name: _tidy_schema(prop) for name, prop in value.items()}
        else:
            tidy[key] = _tidy_schema(value)
    options = tidy.get("anyOf")
    if isinstance(options, list):
        non_null = [option for option in options if option != {"type": "null"}]
        if len(non_null) == 1 and len(options) == 2:
            del tidy["anyOf"]
            tidy = {**non_null[0], **tidy}
            if tidy.get("default", ...) is None:
                del tidy["default"]
    return tidy


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One registered tool: its function, argument model and how it must be run."""

    name: str
    description: str
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    side_effect: bool
    slow: bool
    repeatable: bool = False

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (an object; ``required`` always present)."""
        schema = _tidy_schema(self.arguments_model.model_json_schema())
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        return schema

    def openai_tool(self) -> dict[str, Any]:
        """The tool in OpenAI function-calling format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }

    def validate(self, arguments: Mapping[str, Any] | str | None) -> BaseModel:
        """Check and convert arguments (a mapping, or the JSON text a model produced)."""
        if arguments is None or arguments == "":
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as error:
                raise ToolArgumentError(
                    f"{self.name}: arguments are not valid JSON ({error.msg})"
                ) from error
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(
                f"{self.name}: arguments must be a JSON object, got {type(arguments).__name__}"
            )
        try:
            return self.arguments_model.model_validate(dict(arguments))
        except ValidationError as error:
            raise ToolArgumentError(self._explain(error)) from None

    def _explain(self, error: ValidationError) -> str:
        problems = []
        for item in error.errors():
            argument = ".".join(str(part) for part in item["loc"]) or "arguments"
            if item["type"] == "missing":
                problems.append(f"missing required argument '{argument}'")
            elif item["type"] == "extra_forbidden":
                accepted = ", ".join(self.arguments_model.model_fields) or "none"
                problems.append(f"unexpected argument '{argument}' (accepted: {accepted})")
            else:
                problems.append(f"argument '{argument}': {item['msg']} (got {item['input']!r})")
        return f"{self.name}: " + "; ".join(problems)

    async def execute(self, env: Any, arguments: BaseModel) -> ToolResult:
        """Run the tool with validated arguments; sync functions run on a worker thread.
        Exceptions become a failed :class:`ToolResult`."""
        values = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        try:
            if inspect.iscoroutinefunction(self.function):
                data = await self.function(env, **values)
            else:
                data = await asyncio.to_thread(self.function, env, **values)
        except ToolError as error:
            return ToolResult(self.name, ok=False, error=str(error))
        except Exception as error:
            log.exception("tool %s raised", self.name)
            return ToolResult(self.name, ok=False, error=f"{self.name} failed: {error}")
        return ToolResult(self.name, ok=True, data=data)


def canonical_arguments(arguments: BaseModel) -> str:
    """Validated arguments as sorted JSON: equal requests give equal text."""
    return json.dumps(arguments.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class ToolRegistry:
    """The tools a brain may call, with their schemas."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def tool(
        self,
        function: F | None = None,
        *,
        side_effect: bool = False,
        slow: bool = False,
        repeatable: bool = False,
        name: str | None = None,
    ) -> Any:
        """Register a function as a tool: ``@registry.tool`` or
        ``@registry.tool(side_effect=True, slow=True)``. The function is returned as is.

        ``side_effect`` marks tools that change the world (fenced and idempotent per call);
        ``slow`` tells the Call to speak a filler while it runs. ``repeatable`` side-effecting
        tools run again when repeated instead of replaying their first result: for call-control
        intents (transfer, hang up), whose effect is harmless to repeat but whose intent must be
        raised again when a barge-in discarded the reply that raised it first.
        """

        def register(fn: F) -> F:
            spec = self._build(fn, name or fn.__name__, side_effect, slow, repeatable)
            if spec.name in self._tools:
                raise ValueError(f"a tool named {spec.name!r} is already registered")
            self._tools[spec.name] = spec
            return fn

        return register(function) if function is not None else register

    @staticmethod
    def _build(
        fn: Callable[..., Any], name: str, side_effect: bool, slow: bool, repeatable: bool
    ) -> ToolSpec:
        summary, argument_docs = _docstring_parts(fn)
        if not summary:
            raise ValueError(f"tool {name!r} needs a docstring: it is the model's description")
        parameters = list(inspect.signature(fn).parameters.values())
        if not parameters:
            raise TypeError(f"tool {name!r} must take the environment as its first parameter")
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: dict[str, Any] = {}
        for parameter in parameters[1:]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"tool {name!r}: *args/**kwargs cannot be described to a model")
            if parameter.name not in hints:
                raise TypeError(f"tool {name!r}: argument {parameter.name!r} needs a type hint")
            default = ... if parameter.default is parameter.empty else parameter.default
            description = argument_docs.get(parameter.name)
            fields[parameter.name] = (
                hints[parameter.name],
                Field(default, description=description) if description else default,
            )
        model = create_model(  # type: ignore[call-overload]
            f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        return ToolSpec(name, summary, fn, model, side_effect, slow, repeatable)

    def get(self, name: str) -> ToolSpec:
        """The tool called ``name``; KeyError lists the known tools."""
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(self.unknown_tool_message(name)) from None

    def unknown_tool_message(self, name: str) -> str:
        """The error for a tool that does not exist, listing the ones that do."""
        return f"unknown tool {name!r}; available tools: {', '.join(self._tools) or 'none'}"

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def openai_tools(self) -> list[dict[str, Any]]:
        """Every tool in OpenAI function-calling format, in registration order."""
        return [spec.openai_tool() for spec in self._tools.values()]

    async def invoke(self, call: ToolCall, env: Any) -> ToolResult:
        """Validate and run one tool call. Unknown tools, bad arguments and exceptions come
        back as ``ToolResult(ok=False, error=...)``; nothing is raised."""
        if call.name not in self._tools:
            return ToolResult(call.name, ok=False, error=self.unknown_tool_message(call.name))
        spec = self._tools[call.name]
        try:
            arguments = spec.validate(call.arguments)
        except ToolArgumentError as error:
            return ToolResult(call.name, ok=False, error=str(error))
        return await spec.execute(env, arguments)


def _reusable(task: asyncio.Task[ToolResult]) -> bool:
    """Whether a side effect's first run can stand in for a repeat: running, or succeeded."""
    if not task.done():
        return True
    return not task.cancelled() and task.exception() is None and task.result().ok


REFUSED_STALE_REPLY = "not done: the reply that asked for it was discarded (the caller spoke)"


class ToolRunner:
    """Runs one call's tool calls with the fence, recording each in the call record.

    - A side-effecting tool from a reply that is no longer live is refused (recorded
      "refused", not executed).
    - Once started, a tool runs to completion even if the task awaiting it is cancelled
      (barge-in); it is recorded "done" or "failed". :meth:`drain` waits for such tools.
    - A side-effecting tool repeated with the same arguments in the same call returns the
      first successful result without running again (a failed one may be retried).
    - A tool that takes longer than ``timeout`` seconds is reported failed, never awaited
      forever (for a side-effecting tool its effect is then unknown).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        env: Any,
        store: CallStore,
        call_id: str,
        *,
        timeout: float = 15.0,
    ) -> None:
        self.registry = registry
        self.env = env
        self.store = store
        self.call_id = call_id
        self.timeout = timeout
        self._tasks: set[asyncio.Task[Any]] = set()
        self._effects: dict[tuple[str, str], asyncio.Task[ToolResult]] = {}

    @property
    def in_flight(self) -> int:
        """How many tool runs (and their record writes) are still going."""
        return len(self._tasks)

    async def run(
        self, call: ToolCall, reply_id: str, reply_live: Callable[[], bool]
    ) -> ToolResult:
        """Run ``call`` on behalf of reply ``reply_id``; ``reply_live()`` says whether that
        reply is still the current one. Never raises for tool problems."""
        if call.name not in self.registry:
            error = self.registry.unknown_tool_message(call.name)
            return await self._reject(call, reply_id, "failed", error)
        spec = self.registry.get(call.name)
        if spec.side_effect and not reply_live():
            return await self._reject(call, reply_id, "refused", REFUSED_STALE_REPLY)
        try:
            arguments = spec.validate(call.arguments)
        except ToolArgumentError as error:
            return await self._reject(call, reply_id, "failed", str(error))
        task: asyncio.Task[ToolResult]
        key = (spec.name, canonical_arguments(arguments))
        idempotent = spec.side_effect and not spec.repeatable
        previous = self._effects.get(key) if idempotent else None
        if previous is not None and _reusable(previous):
            task = asyncio.create_task(self._replay(previous, spec, arguments, reply_id))
        else:
            task = asyncio.create_task(self._execute(spec, arguments, reply_id))
            if idempotent:
                self._effects[key] = task
        self._track(task)
        # Shielded: cancelling the caller (a barge-in) does not cancel the tool.
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait until every started tool run has finished and been recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, spec: ToolSpec, arguments: BaseModel, reply_id: str) -> ToolResult:
        record_id = await self._record(
            self.store.record_tool_start(
                self.call_id, reply_id, spec.name, arguments.model_dump(mode="json")
            )
        )
        try:
            result = await asyncio.wait_for(spec.execute(self.env, arguments), self.timeout)
        except TimeoutError:
            result = ToolResult(
                spec.name, ok=False, error=f"{spec.name} did not finish within {self.timeout:g} s"
            )
        await self._record_end(record_id, result)
        return result

    async def _replay(
        self,
        first: asyncio.Task[ToolResult],
        spec: ToolSpec,
        arguments: BaseModel,
        reply_id: str,
    ) -> ToolResult:
        record_id = await self._record(
            self.store.record_tool_start(
                self.call_id, reply_id, spec.name, arguments.model_dump(mode="json")
            )
        )
        result = await first
        await self._record_end(record_id, result)
        return result

    async def _reject(self, call: ToolCall, reply_id: str, status: str, error: str) -> ToolResult:
        write = self.store.record_tool_rejected(
            self.call_id, reply_id, call.name, call.arguments, status, error
        )
        task = asyncio.create_task(self._record(write))
        self._track(task)
        await asyncio.shield(task)
        return ToolResult(call.name, ok=False, error=error)

    async def _record_end(self, record_id: int | None, result: ToolResult) -> None:
        if record_id is None:
            return
        status = "done" if result.ok else "failed"
        await self._record(self.store.record_tool_end(record_id, status, result.data, result.error))

    async def _record(self, write: Awaitable[Any]) -> Any:
        # A failed record write must not take the live call down with it: log and go on.
        try:
            return await write
        except Exception:
            log.exception("could not record a tool call of call %s", self.call_id)
            return None
