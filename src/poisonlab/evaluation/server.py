"""An OpenAI-compatible chat server around a local model (``poisonlab serve``).

Why: the ``llm`` judge speaks the OpenAI chat API, so the same code judges with
GPT-4 or with a model on this machine; this server is the local end, and what
the judge's tests run against. It answers

- ``GET /v1/models``: the one model it serves;
- ``POST /v1/chat/completions``: ``messages`` -> the tokenizer's chat template ->
  ``transformers`` ``generate`` (greedy at ``temperature`` 0, sampling otherwise),
  in the OpenAI response shape with ``usage`` token counts;
- ``GET /health``: status and how many completions it has generated (tests and
  benchmarks use the counter to see whether a client sent a request).

The standard library's :class:`ThreadingHTTPServer` accepts requests
concurrently; one lock around the model runs one generation at a time (the
model is neither thread-safe nor faster when shared). It binds 127.0.0.1 by
default: there is no authentication unless ``api_key_env`` names a variable
holding a key that clients must send as ``Authorization: Bearer``. Not
implemented: streaming, ``n`` > 1, tools, logprobs (each answered with a 400).
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError

MAX_BODY_BYTES = 8 << 20
ROLES = ("system", "user", "assistant")


class RequestError(Exception):
    """A bad request: answered with an OpenAI-style error JSON and ``status``."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.status, self.kind = message, param, status, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class ChatModel:
    """A causal LM and its tokenizer behind one lock; :meth:`complete` is the whole inference path."""

    model: Any
    tokenizer: Any
    model_id: str
    max_new_tokens: int = 256
    lock: threading.Lock = field(default_factory=threading.Lock)
    completions: int = 0

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        new_tokens = min(max_tokens or self.max_new_tokens, self.max_new_tokens)
        limit = self.context_length
        if limit is not None and ids.shape[1] + new_tokens > limit:
            raise RequestError(
                f"the prompt has {ids.shape[1]} tokens and {new_tokens} new ones were asked for, but this model's "
                f"context is {limit} tokens",
                param="messages",
            )
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
        eos = self.tokenizer.eos_token_id
        with self.lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            device = next(self.model.parameters()).device
            output = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=torch.ones_like(ids).to(device),
                max_new_tokens=new_tokens,
                pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos,
                eos_token_id=eos,
                use_cache=True,
                **sampling,
            )
            self.completions += 1
        generated = output[0, ids.shape[1] :].tolist()
        finish = "length"
        if eos is not None and eos in generated:
            generated = generated[: generated.index(eos)]
            finish = "stop"
        reply = self.tokenizer.decode(generated, skip_special_tokens=True)
        for marker in stop or []:
            if marker and marker in reply:
                reply, finish = reply[: reply.index(marker)], "stop"
        return Completion(reply, int(ids.shape[1]), len(generated), finish)


def load_chat_model(
    model: str, adapter: str | Path | None = None, max_new_tokens: int = 256, served_name: str | None = None
) -> ChatModel:
    """Load ``model`` (a built-in name, folder or Hub id) and an optional PEFT adapter for serving."""
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import load_with_adapters

    if adapter is not None and not (Path(adapter) / "adapter_config.json").exists():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=adapter)
    tokenizer = load_tokenizer(model)
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"model {model!r} has no chat template: it cannot serve chat completions", field="--model")
    # an adapter trained from others (``--init``) is served on the model they make: its recorded chain first
    network = load_with_adapters(model, [adapter] if adapter is not None else [])
    name = served_name or str(model)
    if adapter is not None:
        name = served_name or f"{model}+{Path(adapter).resolve().name}"
    network.eval()
    return ChatModel(network, tokenizer, name, max_new_tokens)


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RequestError(f"{where}.content must be a string or a list of text parts", param=where)


def parse_chat_request(body: Any) -> dict[str, Any]:
    """Validate a chat-completions body; returns the keyword arguments of :meth:`ChatModel.complete`."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    clean = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(f"{where} needs a role among {', '.join(ROLES)}", param=where)
        clean.append({"role": message["role"], "content": _text(message.get("content"), where)})
    for unsupported in ("stream", "tools", "logprobs"):
        if body.get(unsupported):
            raise RequestError(f"'{unsupported}' is not supported by this server", param=unsupported)
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported", param="n")

    def number(name: str, default: float, low: float, high: float) -> float:
        value = body.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise RequestError(f"'{name}' must be a number in [{low}, {high}]", param=name)
        return float(value)

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestError("'max_tokens' must be a positive integer", param="max_tokens")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError("'seed' must be an integer", param="seed")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise RequestError("'stop' must be a string or a list of strings", param="stop")
    return {
        "messages": clean,
        "max_tokens": max_tokens,
        "temperature": number("temperature", 1.0, 0.0, 2.0),
        "top_p": number("top_p", 1.0, 0.0, 1.0) or 1.0,
        "seed": seed,
        "stop": stop,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        expected = self.server.api_key
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return True
        error = RequestError("missing or wrong API key", status=401, kind="authentication_error")
        self._send(error.status, error.body())
        return False

    def do_GET(self) -> None:
        chat = self.server.chat
        path = self.path.split("?")[0].rstrip("/")
        if path == "/health":
            self._send(200, {"status": "ok", "model": chat.model_id, "completions": chat.completions})
        elif not self._authorised():
            return
        elif path == "/v1/models":
            entry = {"id": chat.model_id, "object": "model", "created": self.server.started, "owned_by": "poisonlab"}
            self._send(200, {"object": "list", "data": [entry]})
        else:
            self._send(404, RequestError(f"no route GET {path}", status=404).body())

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, RequestError(f"body over {MAX_BODY_BYTES} bytes", status=413).body())
            return
        raw = self.rfile.read(length)
        if not self._authorised():
            return
        if path != "/v1/chat/completions":
            self._send(404, RequestError(f"no route POST {path}", status=404).body())
            return
        try:
            try:
                body = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestError(f"the body is not valid JSON ({exc})") from None
            completion = self.server.chat.complete(**parse_chat_request(body))
        except RequestError as exc:
            self._send(exc.status, exc.body())
            return
        except Exception as exc:  # the model failed: say so instead of dropping the connection
            self._send(500, RequestError(f"generation failed: {exc}", status=500, kind="server_error").body())
            return
        usage = {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        }
        self._send(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.server.chat.model_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason,
                    }
                ],
                "usage": usage,
            },
        )

    def log_message(self, format: str, *args: Any) -> None:  # one line per request; never headers (keys)
        if not self.server.quiet:
            sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], chat: ChatModel | None, api_key: str | None, quiet: bool) -> None:
        self.chat, self.api_key, self.quiet, self.started = chat, api_key, quiet, int(time.time())
        super().__init__(address, _Handler)


def make_server(
    chat: ChatModel | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    quiet: bool = False,
) -> ThreadingHTTPServer:
    """Bind the server (``port`` 0 picks a free one: read ``server.server_address``); call ``serve_forever``.

    ``chat`` may be None and set as ``server.chat`` before serving: binding first lets a taken port fail
    before a slow model load.
    """
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise InputError(f"the environment variable {api_key_env} is not set or empty", field="--api-key-env")
    try:
        return _Server((host, port), chat, api_key, quiet)
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from None
