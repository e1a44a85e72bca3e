"""Streaming tool calls for Qwen2.5 models in llama-cpp-python's server.

llama-cpp-python 0.3.36 has no chat format that streams Qwen's tool calls:
``chatml-function-calling`` refuses ``stream`` with tools, and its streamed text answers come
out grammar-constrained to ``functions.<name>:``. This handler renders Qwen2.5's own tool
prompt (the ``<tools>`` block and ``<tool_call>`` / ``<tool_response>`` tags of its chat
template), streams text as it is generated, and turns ``<tool_call>{json}</tool_call>``
blocks into OpenAI ``tool_calls`` deltas: the call's id and name as soon as the name has
been generated, its arguments when the block is complete.

It runs inside the server process (registered by ``frontdesk.brain.local_llm``); nothing
here is imported by the agent itself.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

CHAT_FORMAT = "frontdesk-qwen-tools"
TOOL_OPEN = "<tool_call>"
_NAME = re.compile(r'\{\s*"name"\s*:\s*"([^"]+)"\s*,\s*"arguments"\s*:')
_STOP = ["<|im_end|>", "<|endoftext|>"]
TEXT_RULE = "[^<>{}\\x5B\\x5D` \\t\\n*#] [^<>{}\\x5B\\x5D`]*"
"""Spoken text, in GBNF: no JSON, tags or markdown anywhere, so a model that half-writes a
tool call as text cannot have it read out to the caller."""


def render_prompt(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None) -> str:
    """The ChatML prompt Qwen2.5 was trained on, tools included (as its chat template)."""
    messages = list(messages)
    system = "You are a helpful assistant."
    if messages and messages[0].get("role") == "system":
        system = str(messages.pop(0).get("content") or "")
    if tools:
        system += (
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query."
            "\n\nYou are provided with function signatures within <tools></tools> XML tags:"
            "\n<tools>"
            + "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
            + "\n</tools>\n\nFor each function call, return a json object with function name"
            " and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )
    parts = [f"<|im_start|>system\n{system}<|im_end|>\n"]
    for index, message in enumerate(messages):
        role = message.get("role")
        content = str(message.get("content") or "")
        if role == "tool":
            if index == 0 or messages[index - 1].get("role") != "tool":
                parts.append("<|im_start|>user")
            parts.append(f"\n<tool_response>\n{content}\n</tool_response>")
            if index == len(messages) - 1 or messages[index + 1].get("role") != "tool":
                parts.append("<|im_end|>\n")
        elif role == "assistant" and message.get("tool_calls"):
            parts.append("<|im_start|>assistant" + (f"\n{content}" if content else ""))
            for call in message["tool_calls"]:
                function = call.get("function", call)
                arguments = function.get("arguments") or "{}"
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                parts.append(
                    f'\n<tool_call>\n{{"name": "{function.get("name")}", '
                    f'"arguments": {arguments}}}\n</tool_call>'
                )
            parts.append("<|im_end|>\n")
        else:
            parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def tool_grammar(tools: Sequence[Mapping[str, Any]], *, text: bool = True) -> str:
    """A GBNF grammar for one reply: plain text (not starting like JSON or a tag), or one
    tool call (tagged or bare JSON) naming a real tool, its arguments shaped by the tool's
    own schema. Small models otherwise write a call as bare JSON or as Python, which would
    be read out to the caller. ``text=False``: a tool call only."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    bodies = []
    for tool in tools:
        function = tool["function"]
        name = str(function["name"])
        schema = converter.resolve_refs(function.get("parameters") or {"type": "object"}, name)
        rule = converter.visit(schema, "args-" + re.sub(r"[^a-zA-Z0-9]+", "-", name))
        bodies.append(f'"{{\\"name\\": \\"{name}\\", \\"arguments\\": " {rule} "}}"')
    root = "root ::= call | text\n" if text else "root ::= call\n"
    return (
        root + 'call ::= "<tool_call>\\n" body "\\n</tool_call>" | body\n'
        f"body ::= {' | '.join(bodies)}\n"
        f"text ::= {TEXT_RULE}\n" + converter.format_grammar()
    )


def _held_back(text: str) -> int:
    """How many trailing characters of ``text`` could be the start of ``<tool_call>``."""
    for size in range(min(len(text), len(TOOL_OPEN) - 1), 0, -1):
        if TOOL_OPEN.startswith(text[-size:]):
            return size
    return 0


def parse_tool_calls(text: str) -> list[tuple[str, str]]:
    """(name, arguments JSON) of each call in ``text`` (``<tool_call>`` blocks or bare JSON
    objects); what is not valid JSON is passed on as arguments as is, so the tool runner
    reports the error to the model."""
    body = text.replace("<tool_call>", " ").replace("</tool_call>", " ")
    decoder = json.JSONDecoder()
    calls: list[tuple[str, str]] = []
    position = 0
    while (start := body.find("{", position)) >= 0:
        try:
            data, position = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            name = _NAME.search(body[start:])
            calls.append((name.group(1) if name else "invalid", body[start:].strip()))
            break
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            arguments = data.get("arguments", {})
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            calls.append((data["name"], arguments))
    return calls


def stream_chat(pieces: Iterator[str], model: str) -> Iterator[dict[str, Any]]:
    """OpenAI ``chat.completion.chunk`` dicts for the streamed text ``pieces``."""
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    pending, tool_text, announced = "", "", 0
    ids: list[str] = []
    started_text = False
    for piece in pieces:
        if tool_text:
            tool_text += piece
            names = _NAME.findall(tool_text)
            for name in names[announced:]:  # a new call's name is known: say so at once
                ids.append(f"call_{uuid.uuid4().hex[:24]}")
                header = {"index": announced, "id": ids[-1], "type": "function"}
                header["function"] = {"name": name, "arguments": ""}
                yield chunk({"tool_calls": [header]})
                announced += 1
            continue
        pending += piece
        found = pending.find(TOOL_OPEN)
        if not started_text and pending.lstrip().startswith("{"):
            tool_text, pending = pending, ""  # a bare JSON call, without the tags
            continue
        if found >= 0:
            text, tool_text, pending = pending[:found], pending[found:], ""
        else:
            keep = _held_back(pending)
            text, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
        if not started_text:
            text = text.lstrip()
        if text:
            started_text = True
            yield chunk({"content": text})
    if not tool_text:
        if pending.strip():
            yield chunk({"content": pending})
        yield chunk({}, "stop")
        return
    calls = parse_tool_calls(tool_text)
    for index, (name, arguments) in enumerate(calls):
        if index >= announced:
            ids.append(f"call_{uuid.uuid4().hex[:24]}")
            header = {"index": index, "id": ids[index], "type": "function"}
            header["function"] = {"name": name, "arguments": ""}
            yield chunk({"tool_calls": [header]})
        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
    yield chunk({}, "tool_calls" if calls else "stop")


def _grammar(tools: Sequence[Mapping[str, Any]], tool_choice: Any) -> str:
    """The grammar for ``tool_choice`` as OpenAI defines it: "none" (text only), "auto"
    (text or a call), "required" (a call), or ``{"type": "function", "function": {"name":
    ...}}`` (a call of that tool)."""
    if not tools or tool_choice == "none":
        return f"root ::= {TEXT_RULE}"
    if tool_choice == "required":
        return tool_grammar(tools, text=False)
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        chosen = [tool for tool in tools if tool["function"]["name"] == name]
        if not chosen:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
        return tool_grammar(chosen, text=False)
    return tool_grammar(tools)


def qwen_tool_chat(
    llama: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    temperature: float = 0.2,
    top_p: float = 0.95,
    top_k: int = 40,
    min_p: float = 0.05,
    stream: bool = False,
    max_tokens: int | None = None,
    repeat_penalty: float = 1.1,
    seed: int | None = None,
    model: str | None = None,
    **_: Any,
) -> Any:
    """A llama-cpp-python chat completion handler (streaming only) with Qwen tool calls,
    grammar-constrained. ``tool_choice: "none"`` keeps the tools in the prompt (so the
    server's prompt cache still matches) but lets the model write only text."""
    if not stream:
        raise ValueError(f"the {CHAT_FORMAT} chat format only streams: send stream=true")
    from llama_cpp.llama_grammar import LlamaGrammar

    prompt = render_prompt(messages, tools)
    rules = _grammar(tools or (), tool_choice)
    completion = llama.create_completion(
        prompt=prompt,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        stream=True,
        stop=_STOP,
        max_tokens=max_tokens,
        repeat_penalty=repeat_penalty,
        seed=seed,
        grammar=LlamaGrammar.from_string(rules, verbose=False),
    )
    pieces = (part["choices"][0]["text"] for part in completion)
    chunks = stream_chat(pieces, model or "local")
    return chunks
