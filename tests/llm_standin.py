"""A TEST DOUBLE of an OpenAI-compatible chat endpoint (``POST /v1/chat/completions``) on loopback.

No generative model is available offline, so the tests of the chain's generative path talk to
this stand-in. It is deterministic: given a prompt holding cited passages (``[doc] text``) and a
``Question:`` line, it answers with the top passage's sentence sharing most words with the question
and that passage's citation; given no passages (a prompt that dropped the context) it answers with an
unsupported sentence; asked a yes/no judge question it says whether the answer's words are in the
context. It reports token usage (words) like the real API and records every request.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"[a-z0-9_]{3,}")
UNSUPPORTED = "Python decides this at random for each program run."


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def reply_to(prompt: str) -> str:
    if "Reply with one word: yes or no" in prompt:
        context, _, answer = prompt.partition("\n\nAnswer:\n")
        answer = answer.split("\n\nIs every claim")[0]
        return "yes" if len(_words(answer) & _words(context)) >= 0.6 * max(len(_words(answer)), 1) else "no"
    question = re.search(r"Question:\s*(.+)", prompt)
    asked = _words(question.group(1)) if question else set()
    passages = re.findall(r"^\[([^\]\s]+)\] (.+?)(?=\n\n\[|\n\nQuestion:|\Z)", prompt, re.M | re.S)
    best = max(
        (
            (len(asked & _words(s)), s.strip(), doc)
            for doc, text in passages[:1]  # the top passage
            for s in re.split(r"(?<=[.!?])\s+|\n+", text)
            if len(_words(s)) >= 3
        ),
        default=None,
    )
    return f"{best[1]} [{best[2]}]" if best else UNSUPPORTED


class ChatStandIn:
    """``with ChatStandIn() as llm: llm.url`` → ``http://127.0.0.1:<port>/v1``; ``llm.requests``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                )
                prompt = body["messages"][-1]["content"]
                text = reply_to(prompt)
                payload = json.dumps(
                    {
                        "id": f"standin-{len(standin.requests)}",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": len(prompt.split()),
                            "completion_tokens": len(text.split()),
                            "total_tokens": len(prompt.split()) + len(text.split()),
                        },
                    }
                ).encode()
                status = 200 if self.path == "/v1/chat/completions" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatStandIn:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
